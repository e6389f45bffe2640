/*
 * strlist - a growable list of owned strings.
 */
#ifndef POSTERN_STRLIST_H
#define POSTERN_STRLIST_H

#include <stdbool.h>
#include <stddef.h>

struct strlist {
    char  **items;
    size_t  count;
    size_t  cap;
};

#define STRLIST_INIT { NULL, 0, 0 }

void strlist_add(struct strlist *l, const char *s);          /* copies s */
bool strlist_contains(const struct strlist *l, const char *s);
bool strlist_contains_nocase(const struct strlist *l, const char *s);
void strlist_free(struct strlist *l);
/* strlist_split - add the items of a list "a, b c" (commas and/or white space) */
void strlist_split(struct strlist *l, const char *text);

#endif
