/*
 * fuzz_auth_proto - lib/auth_proto.c: the Dovecot auth protocol as both ends
 * read it (authd parses client lines, smtpd/imapd parse server lines), the
 * tab escaping, base64, and the SASL PLAIN / LOGIN responses inside it.
 * The input is split into lines; each line goes through both line parsers.
 */
#include "fuzz_util.h"
#include "auth_proto.h"

/* one_line - everything that takes a line or a SASL response */
static void one_line(const char *line, size_t len)
{
    char   *copy;
    struct strbuf err, raw, out;
    struct auth_server_line sl;
    struct auth_client_line cl;
    struct auth_plain plain;

    sb_init(&err);
    copy = malloc(len + 1);
    if (copy == NULL)
        abort();
    memcpy(copy, line, len);
    copy[len] = 0;
    (void) auth_server_line_parse(copy, &sl, &err);
    memcpy(copy, line, len);
    copy[len] = 0;
    (void) auth_client_line_parse(copy, &cl, &err);
    memcpy(copy, line, len);
    copy[len] = 0;
    (void) auth_tab_unescape(copy);
    (void) auth_server_mech_offered(copy, "PLAIN");
    sb_init(&out);
    auth_tab_escape(&out, copy);
    auth_log_name(&out, copy);
    sb_free(&out);
    /* the line as a base64 SASL response */
    sb_init(&raw);
    if (auth_base64_valid(copy) && auth_base64_decode(line, len, &raw) == 0) {
        (void) auth_login_value(&raw, 256, &err);
        if (auth_plain_decode(&raw, &plain, &err) == 0 && (plain.authcid == NULL || plain.authcid[0] == 0))
            abort();                    /* the header promises a login name, never empty */
    }
    sb_free(&raw);
    /* and as raw PLAIN bytes */
    sb_init(&raw);
    sb_append(&raw, line, len);
    (void) auth_plain_decode(&raw, &plain, &err);
    sb_free(&raw);
    free(copy);
    sb_free(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *) data;
    const char *end = p + size;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t) (end - p));
        size_t  len = nl ? (size_t) (nl - p) : (size_t) (end - p);

        one_line(p, len);
        p += len + (nl != NULL);
    }
    return 0;
}
