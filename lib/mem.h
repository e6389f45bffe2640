/*
 * mem - allocation that never returns NULL.
 *
 * A mail daemon that runs out of memory cannot do anything useful with a NULL
 * pointer; these wrappers log and exit instead, so callers need no checks.
 * Sizes are checked for multiplication overflow.
 */
#ifndef POSTERN_MEM_H
#define POSTERN_MEM_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *ptr, size_t size);
void *xreallocarray(void *ptr, size_t count, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t len);

#endif
