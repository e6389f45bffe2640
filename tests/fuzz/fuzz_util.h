/*
 * fuzz_util - what the libFuzzer targets share: the input as a NUL-terminated
 * copy (the parsers under test take C strings), and quiet logging.
 *
 * A target must not keep anything between runs: every allocation is freed, so
 * LeakSanitizer (on by default in libFuzzer) reports a per-input leak.
 */
#ifndef POSTERN_FUZZ_UTIL_H
#define POSTERN_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* fuzz_cstring - data[0..size) plus a NUL, malloc'ed (free it) */
static inline char *fuzz_cstring(const uint8_t *data, size_t size)
{
    char   *s = malloc(size + 1);

    if (s == NULL)
        abort();
    memcpy(s, data, size);
    s[size] = 0;
    return s;
}

/* fuzz_quiet_log - daemons' msg_info/msg_warn would flood the fuzzer's output */
static inline void fuzz_quiet_log(void)
{
    static int done;

    if (!done) {
        log_init("postern", "fuzz");
        log_to_stderr(getenv("POSTERN_FUZZ_LOG") != NULL);
        log_set_verbose(getenv("POSTERN_FUZZ_LOG") != NULL);
        done = 1;
    }
}

#endif
