/*
 * fuzz_address - lib/address.c: the MAIL FROM / RCPT TO path parser, with and
 * without the null sender allowed, and re-quoting what it returns.
 */
#include "fuzz_util.h"
#include "address.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char   *text = fuzz_cstring(data, size);
    const char *why;
    struct address a;
    struct strbuf quoted;

    for (unsigned opt = 0; opt <= ADDRESS_ALLOW_NULL; opt++) {
        address_init(&a);
        long used = address_parse_path(text, size, opt, &a, &why);

        if (used >= 0) {
            /* what the parser promises: bounded, and what follows is a space or the end
             * (a NUL ends a C string: smtpd refuses command lines holding one anyway) */
            if ((size_t) used > size || (used < (long) size && text[used] != ' ' && text[used] != 0))
                abort();
            if (sb_len(&a.addr) > 2 * ADDRESS_PATH_MAX + 2 || sb_len(&a.domain) > ADDRESS_DOMAIN_MAX)
                abort();
            sb_init(&quoted);
            address_quote_local(&quoted, sb_str(&a.local), sb_len(&a.local));
            sb_free(&quoted);
        } else if (why == NULL) {
            abort();
        }
        address_free(&a);
    }
    free(text);
    return 0;
}
