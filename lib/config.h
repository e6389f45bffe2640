/*
 * config - main.cf: Postfix-compatible "name = value" parameters.
 *
 * Syntax: "name = value" lines, "#" comments (only at the start of a logical
 * line), continuation lines start with whitespace, "$name", "${name}", "$(name)"
 * expansion plus "${name?text}" (text if name is non-empty) and "${name:text}"
 * (text if name is empty), "$$" for a literal dollar. Expansion happens when a
 * value is read, so later definitions are seen; loops are detected.
 *
 * Every parameter Postern knows is listed with its type and default in
 * config_params.c. Typed values (int, bool, time, size) and lists of fixed
 * words (notify_classes) are validated when the file is loaded: a bad value is
 * an error "main.cf:LINE: ...", never a silent default. Unknown names are warnings with a "did you mean" suggestion.
 */
#ifndef POSTERN_CONFIG_H
#define POSTERN_CONFIG_H

#include <stdbool.h>
#include "strbuf.h"

struct config;

/* config_load - read CONFIG_DIR/main.cf; NULL with "path:line: message" in err */
struct config *config_load(const char *config_dir, struct strbuf *err);
/* config_override - apply "name=value" (master.cf -o, command line); -1 with err */
int  config_override(struct config *cfg, const char *assignment, struct strbuf *err);
void config_free(struct config *cfg);

/* Getters return the expanded value; asking for an unknown name is a bug (msg_panic). */
const char *config_str(struct config *cfg, const char *name);
long long   config_int(struct config *cfg, const char *name);
bool        config_bool(struct config *cfg, const char *name);
long long   config_time(struct config *cfg, const char *name);   /* seconds */
long long   config_size(struct config *cfg, const char *name);   /* bytes */

/* config_lookup - expanded value of any name, known or set in main.cf; NULL if neither */
const char *config_lookup(struct config *cfg, const char *name);
/* config_is_set - the name was given in main.cf or by an override */
bool config_is_set(struct config *cfg, const char *name);
/* config_line - main.cf line where name was set; 0 if it was not */
int  config_line(struct config *cfg, const char *name);
const char *config_path(struct config *cfg);   /* the main.cf that was read */

/* config_warnings - newline-separated "path:line: warning" texts found by config_load */
const char *config_warnings(struct config *cfg);

/* config_foreach - every parameter in name order; only_set: just those given in main.cf/overrides */
typedef void (*config_visit_fn)(const char *name, const char *value, bool is_set, void *arg);
void config_foreach(struct config *cfg, bool only_set, config_visit_fn visit, void *arg);

/* Parsers shared with master.cf and postctl, for values with units. 0 ok, -1 bad. */
int config_parse_time(const char *text, long long *seconds);    /* "300", "300s", "5m", "1h", "2d", "1w" */
int config_parse_size(const char *text, long long *bytes);      /* "10240000", "10k", "50M", "1G" */
int config_parse_bool(const char *text, bool *value);           /* yes/no, true/false, on/off, 1/0 */

#endif
