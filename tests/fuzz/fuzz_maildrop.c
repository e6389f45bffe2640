/*
 * fuzz_maildrop - lib/maildrop.c: the pickup step's reader of files that any
 * local user writes into maildrop/. Whatever it accepts must keep the
 * format's promises (a sender, 1..MAILDROP_RCPT_MAX recipients, values that
 * maildrop_value_valid() accepts, a body inside the input without NUL).
 */
#include "fuzz_util.h"
#include "maildrop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy: ASan sees any read past the end (no NUL after it). */
    char   *copy = malloc(size ? size : 1);
    struct strbuf err = STRBUF_INIT;
    struct maildrop md;

    if (copy == NULL)
        abort();
    memcpy(copy, data, size);
    if (maildrop_parse(copy, size, &md, &err) == 0) {
        if (md.sender == NULL || md.nrcpt == 0 || md.nrcpt > MAILDROP_RCPT_MAX
            || !maildrop_value_valid(md.sender, false)
            || (md.fullname && !maildrop_value_valid(md.fullname, true)))
            abort();
        for (size_t i = 0; i < md.nrcpt; i++)
            if (!*md.rcpts[i] || !maildrop_value_valid(md.rcpts[i], false))
                abort();
        if (md.body < copy || md.body + md.body_len != copy + size || memchr(md.body, 0, md.body_len))
            abort();
        maildrop_free(&md);
    } else if (sb_len(&err) == 0) {
        abort();
    }
    sb_free(&err);
    free(copy);
    return 0;
}
