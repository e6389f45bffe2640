/*
 * map_regexp - regexp: tables, Postfix's regexp_table(5), POSIX regular
 * expressions through the C library (no new dependency).
 *
 * The map type itself is map_type_regexp (map.h); this header gives the
 * parser and matcher on a text held in memory, for the map type, the unit
 * tests and the fuzz-style tests of the parser.
 *
 * Format, one rule per logical line (a line starting with white space
 * continues the one before; '#' comments and empty lines are skipped):
 *
 *   /pattern/flags result      the first rule whose pattern matches wins
 *   !/pattern/flags result     matches when the pattern does not
 *
 * Any delimiter other than white space and '\' may stand for '/' (as in
 * Postfix: "#pattern#"); a backslash before the delimiter puts it in the
 * pattern. Flags toggle: i (case-INsensitive is the default, i makes the
 * pattern case-sensitive), x (extended syntax is the default, x makes it a
 * basic regular expression), m (multi-line: '^' and '$' at line breaks).
 * The result may use $1..$9 (also ${1} and $(1)) for the text a
 * parenthesized subexpression matched and $$ for a '$'; a reference past the
 * pattern's subexpressions, or any in a negated rule, is an error.
 */
#ifndef POSTERN_MAP_REGEXP_H
#define POSTERN_MAP_REGEXP_H

#include <stddef.h>
#include "map.h"
#include "strbuf.h"

#define REGEXP_TABLE_MAX_BYTES (16 * 1024 * 1024)   /* a bigger file is surely not a table */

struct regexp_table;

/* regexp_table_parse - the rules of text[0..len); NULL with "path:line: ..." in err */
struct regexp_table *regexp_table_parse(const char *text, size_t len, const char *path,
                                        struct strbuf *err);
/* regexp_table_lookup - the first matching rule's result (substituted) into value */
enum map_status regexp_table_lookup(const struct regexp_table *t, const char *key,
                                    struct strbuf *value);
/* regexp_table_foreach_result - fn(arg, result, line) for each rule, in order, until fn returns nonzero */
int  regexp_table_foreach_result(const struct regexp_table *t,
                                 int (*fn)(void *arg, const char *result, int line), void *arg);
size_t regexp_table_count(const struct regexp_table *t);
void regexp_table_free(struct regexp_table *t);

#endif
