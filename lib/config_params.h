/*
 * config_params - internals shared by config.c, config_params.c and master_cf.c.
 *
 * Not for daemons: they use config.h. This header holds the table of known
 * parameters (config_params.c), the reader of logical lines that main.cf and
 * master.cf share (continuation lines, comments, length limits), and a dry run
 * of config_override() that master.cf uses to validate "-o name=value".
 */
#ifndef POSTERN_CONFIG_PARAMS_H
#define POSTERN_CONFIG_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config.h"
#include "strbuf.h"

/* Bounds on what we accept from a configuration file. */
#define CONFIG_LINE_MAX   65536         /* one logical line, continuations included */
#define CONFIG_VALUE_MAX  (1024 * 1024) /* one value after $name expansion */
#define CONFIG_NAME_MAX   128           /* one parameter name */

enum config_type { CONFIG_STR, CONFIG_INT, CONFIG_BOOL, CONFIG_TIME, CONFIG_SIZE };

/* How a default is found: the text in def, or computed from the host. */
enum config_computed { CONFIG_DEF_TEXT, CONFIG_DEF_HOSTNAME, CONFIG_DEF_DOMAIN };

struct config_param {
    const char *name;
    enum config_type type;
    const char *def;                    /* expandable like a main.cf value */
    long long min;                      /* typed values: smallest accepted */
    enum config_computed computed;
    const char *const *words;           /* strings: a list of these words only (NULL-ended); NULL: any text */
};

extern const struct config_param config_params[];
extern const size_t config_params_count;

/* config_type_name - "string", "integer", ... for messages */
const char *config_type_name(enum config_type type);
/* config_type_hint - what a valid value looks like, for error suggestions */
const char *config_type_hint(enum config_type type);
/* config_name_valid - letters, digits and '_' only, 1..CONFIG_NAME_MAX bytes */
bool config_name_valid(const char *name, size_t len);

/* config_check_override - would config_override() accept this? cfg is left unchanged */
int config_check_override(struct config *cfg, const char *assignment, struct strbuf *err);

/* Logical-line reader: "#" lines and blank lines are skipped, lines that start
 * with whitespace continue the previous line (joined by one space), trailing
 * whitespace is dropped. */
struct config_reader {
    FILE   *fp;
    const char *path;
    int     lineno;                     /* physical lines read so far */
    struct strbuf peek;                 /* a line read ahead, not yet used */
    int     peek_line;
    bool    peek_valid;
};

void config_reader_init(struct config_reader *r, FILE *fp, const char *path);
/* config_reader_next - 1 with a line and its first line number, 0 at end, -1 with err */
int  config_reader_next(struct config_reader *r, struct strbuf *line, int *lineno, struct strbuf *err);
void config_reader_free(struct config_reader *r);

#endif
