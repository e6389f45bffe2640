/*
 * json - writing JSON for "--json" listings: string escaping only; callers
 * lay out objects themselves. Bytes that are not valid UTF-8 become U+FFFD,
 * so a hostile queue file or table entry cannot break the output.
 */
#ifndef POSTERN_JSON_H
#define POSTERN_JSON_H

#include "strbuf.h"

/* json_string - append text as a quoted, escaped JSON string */
void json_string(struct strbuf *out, const char *text);

#endif
