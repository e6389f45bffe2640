/*
 * fuzz_map_regexp - lib/map_regexp.c: a regexp: table from hostile text (the
 * parser, regcomp() on whatever patterns it finds, the $n checks), then
 * lookups of header-like keys, among them the input's own first line, so
 * that substitution runs on matches it did not choose.
 */
#include "fuzz_util.h"
#include "map_regexp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const keys[] = {
        "Subject: hello", "Content-Type: application/octet-stream; name=x.exe",
        "", "$1 $$ ${9} (a)(b)", "X\tY\nZ",
    };
    struct strbuf err = STRBUF_INIT, value = STRBUF_INIT;
    struct regexp_table *t;
    char   *line;

    fuzz_quiet_log();
    /* Patterns with deep nesting make regcomp slow, not wrong: keep inputs small. */
    if (size > 4096)
        return 0;
    t = regexp_table_parse((const char *) data, size, "fuzz", &err);
    if (t == NULL) {
        if (strncmp(sb_str(&err), "fuzz:", 5) != 0)
            abort();
    } else {
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
            if (regexp_table_lookup(t, keys[i], &value) == MAP_FOUND && sb_len(&value) > 65536 * 10)
                abort();
        line = fuzz_cstring(data, size);
        line[strcspn(line, "\n")] = '\0';
        (void) regexp_table_lookup(t, line, &value);
        free(line);
        regexp_table_free(t);
    }
    sb_free(&err);
    sb_free(&value);
    return 0;
}
