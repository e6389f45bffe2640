/*
 * map_inline - inline: maps, a small table written in main.cf itself.
 *
 * Interface: map_type_inline (map.h). Syntax as Postfix documents it:
 *   inline:{ key1=value1, key2=value2 }
 *   inline:{ { key = text with spaces, and commas }, key2=value2 }
 * Items are separated by commas and/or white space; an item in braces may
 * hold both, and white space around its '=' is ignored. Keys are folded to
 * lower case. The table is small, so lookups scan it.
 *
 * Diagnostics: missing braces, an item without '=', an empty key or value,
 * a duplicate key, an empty table.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "strbuf.h"
#include "map.h"

struct inline_entry {
    char   *key;
    char   *value;
};

struct inline_map {
    struct inline_entry *entries;
    size_t  count;
};

/* inline_close - free every entry */
static void inline_close(void *handle)
{
    struct inline_map *im = handle;

    for (size_t i = 0; i < im->count; i++) {
        free(im->entries[i].key);
        free(im->entries[i].value);
    }
    free(im->entries);
    free(im);
}

/* inline_find - the entry for a folded key, or NULL */
static struct inline_entry *inline_find(struct inline_map *im, const char *key)
{
    for (size_t i = 0; i < im->count; i++)
        if (strcmp(im->entries[i].key, key) == 0)
            return &im->entries[i];
    return NULL;
}

/* inline_add - one "key=value" item (braces already removed); -1 with err */
static int inline_add(struct inline_map *im, const char *item, struct strbuf *err)
{
    const char *eq = strchr(item, '=');
    const char *ks = item, *ke, *vs, *ve;
    struct inline_entry e;

    if (eq == NULL) {
        sb_printf(err, "'%s' has no '='; write key=value, or {key = value} "
                  "for a value with spaces or commas", item);
        return -1;
    }
    ke = eq;
    vs = eq + 1;
    ve = item + strlen(item);
    while (ks < ke && isspace((unsigned char) *ks))
        ks++;
    while (ke > ks && isspace((unsigned char) ke[-1]))
        ke--;
    while (vs < ve && isspace((unsigned char) *vs))
        vs++;
    while (ve > vs && isspace((unsigned char) ve[-1]))
        ve--;
    if (ks == ke) {
        sb_printf(err, "'%s': missing key before '='", item);
        return -1;
    }
    if (vs == ve) {
        sb_printf(err, "'%s': missing value after '='", item);
        return -1;
    }
    if ((size_t) (ke - ks) > MAP_LINE_MAX || (size_t) (ve - vs) > MAP_LINE_MAX) {
        sb_printf(err, "item longer than %d bytes", MAP_LINE_MAX);
        return -1;
    }
    e.key = xstrndup(ks, (size_t) (ke - ks));
    for (char *cp = e.key; *cp; cp++)
        *cp = (char) tolower((unsigned char) *cp);
    if (inline_find(im, e.key)) {
        sb_printf(err, "duplicate key '%s'", e.key);
        free(e.key);
        return -1;
    }
    e.value = xstrndup(vs, (size_t) (ve - vs));
    im->entries = xreallocarray(im->entries, im->count + 1, sizeof(*im->entries));
    im->entries[im->count++] = e;
    return 0;
}

/* inline_open - parse "{ item, item ... }" */
static void *inline_open(const char *name, struct strbuf *err)
{
    struct inline_map *im = xcalloc(1, sizeof(*im));
    struct strbuf body = STRBUF_INIT;
    struct strbuf tok = STRBUF_INIT;
    struct strbuf item = STRBUF_INIT;
    const char *cp;
    int     ret;

    if (*name != '{') {
        sb_puts(err, "expected inline:{ key=value, ... }");
        goto fail;
    }
    if (map_unbrace(name, &body, err) < 0)
        goto fail;
    cp = sb_str(&body);
    while ((ret = map_token(&cp, &tok, err)) > 0) {
        if (tok.data[0] == '{') {
            if (map_unbrace(sb_str(&tok), &item, err) < 0)
                goto fail;
        } else {
            sb_set(&item, sb_str(&tok));
        }
        if (inline_add(im, sb_str(&item), err) < 0)
            goto fail;
    }
    if (ret < 0)
        goto fail;
    if (im->count == 0) {
        sb_puts(err, "empty table; expected inline:{ key=value, ... }");
        goto fail;
    }
    sb_free(&body);
    sb_free(&tok);
    sb_free(&item);
    return im;
fail:
    sb_free(&body);
    sb_free(&tok);
    sb_free(&item);
    inline_close(im);
    return NULL;
}

/* inline_lookup - scan the entries */
static enum map_status inline_lookup(void *handle, const char *key, struct strbuf *value)
{
    struct inline_entry *e = inline_find(handle, key);

    if (e == NULL)
        return MAP_NOTFOUND;
    sb_puts(value, e->value);
    return MAP_FOUND;
}

const struct map_type map_type_inline = {
    .name = "inline",
    .open = inline_open,
    .lookup = inline_lookup,
    .changed = NULL,
    .close = inline_close,
    .compile = NULL,
};
