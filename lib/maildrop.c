/*
 * maildrop - writer and validating reader of the maildrop file format.
 *
 * Interface: maildrop.h. The reader is the pickup step's only view of a file
 * that any local user wrote: every line is length-checked, every value
 * checked byte by byte, the recipient count is bounded, and the message may
 * not hold a NUL byte. Diagnostics are the err texts; nothing is logged here.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "mem.h"
#include "strbuf.h"

#include "maildrop.h"

/* maildrop_name_valid - exactly MAILDROP_NAME_LEN characters [0-9A-F] */
bool maildrop_name_valid(const char *name)
{
    size_t  i;

    for (i = 0; i < MAILDROP_NAME_LEN; i++)
        if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'A' && name[i] <= 'F')))
            return false;
    return name[i] == 0;
}

/* maildrop_name_new - 80 random bits as hex: names others cannot guess */
void maildrop_name_new(char name[MAILDROP_NAME_LEN + 1])
{
    static const char hex[] = "0123456789ABCDEF";
    unsigned char rnd[MAILDROP_NAME_LEN / 2];
    size_t  got = 0;

    while (got < sizeof(rnd)) {
        ssize_t n = getrandom(rnd + got, sizeof(rnd) - got, 0);

        if (n <= 0)
            break;
        got += (size_t) n;
    }
    if (got < sizeof(rnd)) {
        /* No entropy source: still unique (O_EXCL), only guessable. */
        unsigned long long seed = (unsigned long long) time(NULL) ^ ((unsigned long long) getpid() << 32);

        for (size_t i = got; i < sizeof(rnd); i++, seed >>= 3)
            rnd[i] = (unsigned char) (seed ^ (i * 131));
    }
    for (size_t i = 0; i < sizeof(rnd); i++) {
        name[2 * i] = hex[rnd[i] >> 4];
        name[2 * i + 1] = hex[rnd[i] & 15];
    }
    name[MAILDROP_NAME_LEN] = 0;
}

/* maildrop_value_valid - addresses: printable ASCII, no space; text: no control character */
bool maildrop_value_valid(const char *value, bool is_text)
{
    size_t  len = strlen(value);

    if (len > MAILDROP_VALUE_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) value[i];

        if (c < 0x20 || c == 0x7f || (!is_text && (c == ' ' || c >= 0x80)))
            return false;
    }
    return true;
}

/* maildrop_format_envelope - magic and envelope lines */
void maildrop_format_envelope(struct strbuf *out, const char *sender, const char *fullname,
                              char *const *rcpts, size_t nrcpt)
{
    sb_puts(out, MAILDROP_MAGIC);
    sb_printf(out, "sender=%s\n", sender);
    if (fullname != NULL)
        sb_printf(out, "fullname=%s\n", fullname);
    for (size_t i = 0; i < nrcpt; i++)
        sb_printf(out, "rcpt=%s\n", rcpts[i]);
    sb_putc(out, '\n');
}

/* maildrop_free - the strings and the recipient list */
void maildrop_free(struct maildrop *md)
{
    free(md->sender);
    free(md->fullname);
    for (size_t i = 0; i < md->nrcpt; i++)
        free(md->rcpts[i]);
    free(md->rcpts);
    memset(md, 0, sizeof(*md));
}

/* envelope_line - one "name=value" line into md; -1 with err */
static int envelope_line(const char *line, size_t len, struct maildrop *md, struct strbuf *err)
{
    const char *eq = memchr(line, '=', len);
    size_t  nlen, vlen;
    char   *value;
    bool    is_text;

    if (eq == NULL) {
        sb_set(err, "envelope line without '='");
        return -1;
    }
    nlen = (size_t) (eq - line);
    vlen = len - nlen - 1;
    if (vlen > MAILDROP_VALUE_MAX || memchr(eq + 1, 0, vlen) != NULL) {
        sb_set(err, "envelope value too long or with a NUL byte");
        return -1;
    }
    is_text = nlen == 8 && memcmp(line, "fullname", 8) == 0;
    value = xstrndup(eq + 1, vlen);
    if (!maildrop_value_valid(value, is_text)) {
        sb_printf(err, "bad characters in envelope value \"%.*s\"", (int) nlen, line);
        free(value);
        return -1;
    }
    if (nlen == 6 && memcmp(line, "sender", 6) == 0 && md->sender == NULL) {
        md->sender = value;
    } else if (is_text && md->fullname == NULL) {
        md->fullname = value;
    } else if (nlen == 4 && memcmp(line, "rcpt", 4) == 0 && vlen > 0) {
        if (md->nrcpt >= MAILDROP_RCPT_MAX) {
            sb_printf(err, "more than %d recipients", MAILDROP_RCPT_MAX);
            free(value);
            return -1;
        }
        md->rcpts = xreallocarray(md->rcpts, md->nrcpt + 1, sizeof(*md->rcpts));
        md->rcpts[md->nrcpt++] = value;
    } else {
        sb_printf(err, "unexpected or repeated envelope line \"%.*s\"", (int) (nlen > 20 ? 20 : nlen), line);
        free(value);
        return -1;
    }
    return 0;
}

/* maildrop_parse - magic, envelope up to the empty line, then the message */
int maildrop_parse(const char *data, size_t len, struct maildrop *md, struct strbuf *err)
{
    size_t  magic_len = strlen(MAILDROP_MAGIC);
    size_t  pos;

    memset(md, 0, sizeof(*md));
    if (len < magic_len || memcmp(data, MAILDROP_MAGIC, magic_len) != 0) {
        sb_set(err, "not a maildrop file (bad magic)");
        return -1;
    }
    for (pos = magic_len;;) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t  llen;

        if (nl == NULL) {
            sb_set(err, "truncated envelope");
            goto bad;
        }
        llen = (size_t) (nl - (data + pos));
        if (llen == 0) {
            pos++;
            break;
        }
        if (envelope_line(data + pos, llen, md, err) != 0)
            goto bad;
        pos += llen + 1;
    }
    if (md->sender == NULL || md->nrcpt == 0) {
        sb_set(err, md->sender == NULL ? "no sender line" : "no recipients");
        goto bad;
    }
    md->body = data + pos;
    md->body_len = len - pos;
    if (memchr(md->body, 0, md->body_len) != NULL) {
        sb_set(err, "NUL byte in the message");
        goto bad;
    }
    for (size_t i = 0; i < md->body_len && !md->body_8bit; i++)
        md->body_8bit = (unsigned char) md->body[i] >= 0x80;
    return 0;
bad:
    maildrop_free(md);
    return -1;
}
