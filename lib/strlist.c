/*
 * strlist - a growable list of owned strings. See strlist.h.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mem.h"
#include "strlist.h"

void strlist_add(struct strlist *l, const char *s)
{
    if (l->count == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->items = xreallocarray(l->items, l->cap, sizeof(*l->items));
    }
    l->items[l->count++] = xstrdup(s);
}

bool strlist_contains(const struct strlist *l, const char *s)
{
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->items[i], s) == 0)
            return true;
    return false;
}

bool strlist_contains_nocase(const struct strlist *l, const char *s)
{
    for (size_t i = 0; i < l->count; i++)
        if (strcasecmp(l->items[i], s) == 0)
            return true;
    return false;
}

void strlist_free(struct strlist *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = l->cap = 0;
}

void strlist_split(struct strlist *l, const char *text)
{
    const char *sep = ", \t\r\n";

    while (*text) {
        size_t  skip = strspn(text, sep);
        size_t  len;

        text += skip;
        len = strcspn(text, sep);
        if (len == 0)
            break;
        char   *item = xstrndup(text, len);

        strlist_add(l, item);
        free(item);
        text += len;
    }
}
