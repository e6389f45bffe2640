/*
 * map_static - static: maps, the same value for every key.
 *
 * Interface: map_type_static (map.h). "static:OK" answers OK to every
 * lookup; "static:{text with spaces}" allows spaces and commas in the value
 * (and in a main.cf list), as Postfix does. Nothing to compile, nothing that
 * can change.
 *
 * Diagnostics: unbalanced braces.
 */
#include <stdlib.h>

#include "mem.h"
#include "strbuf.h"
#include "map.h"

struct static_map {
    struct strbuf value;
};

/* static_open - the value is the name, without its braces if it has them */
static void *static_open(const char *name, struct strbuf *err)
{
    struct static_map *sm = xcalloc(1, sizeof(*sm));

    sb_init(&sm->value);
    if (*name == '{') {
        if (map_unbrace(name, &sm->value, err) < 0) {
            sb_free(&sm->value);
            free(sm);
            return NULL;
        }
    } else {
        sb_set(&sm->value, name);
    }
    return sm;
}

/* static_lookup - the same value for every key */
static enum map_status static_lookup(void *handle, const char *key, struct strbuf *value)
{
    struct static_map *sm = handle;

    (void) key;
    sb_append(value, sm->value.data ? sm->value.data : "", sb_len(&sm->value));
    return MAP_FOUND;
}

/* static_close - free the value */
static void static_close(void *handle)
{
    struct static_map *sm = handle;

    sb_free(&sm->value);
    free(sm);
}

const struct map_type map_type_static = {
    .name = "static",
    .open = static_open,
    .lookup = static_lookup,
    .changed = NULL,
    .close = static_close,
    .compile = NULL,
};
