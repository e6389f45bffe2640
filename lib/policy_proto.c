/*
 * policy_proto - Postfix's SMTP access policy delegation protocol, both ends.
 * See policy_proto.h for the interface and the grammar.
 *
 * The reader keeps at most one partial line (bounded by POLICY_MAX_LINE, plus
 * one byte for a CR that a sloppy peer may send before the LF) and the
 * attributes of the block so far (bounded by POLICY_MAX_ATTRS), so a peer
 * that never sends an empty line cannot make it grow without limit.
 *
 * Diagnostics: policy_reader_feed() and its err text say which line was bad
 * and why; nothing is logged here.
 */
#include <stdbool.h>
#include <string.h>
#include <stdlib.h>

#include "mem.h"
#include "policy_proto.h"
#include "strbuf.h"

/* valid_name - a protocol attribute name: [a-z0-9_]+ */
static bool valid_name(const char *name, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        char    c = name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

void policy_reader_init(struct policy_reader *rd)
{
    sb_init(&rd->line);
    memset(&rd->block, 0, sizeof(rd->block));
}

void policy_reader_free(struct policy_reader *rd)
{
    sb_free(&rd->line);
    policy_block_free(&rd->block);
}

/* reader_fail - report err, and leave the reader empty so it stays safe to free or reuse */
static long reader_fail(struct policy_reader *rd, struct strbuf *err, const char *why)
{
    if (err != NULL)
        sb_set(err, why);
    sb_reset(&rd->line);
    policy_block_free(&rd->block);
    return -1;
}

/* reader_line - take one complete line (LF removed); 1 at the end of a block, 0 to go on, -1 bad */
static int reader_line(struct policy_reader *rd, struct strbuf *err)
{
    char   *line = rd->line.data ? rd->line.data : (char *) "";
    size_t  len = sb_len(&rd->line);
    char   *eq;

    if (len > 0 && line[len - 1] == '\r')       /* tolerate CRLF; a bare CR elsewhere is refused */
        len--;
    if (len > POLICY_MAX_LINE)
        return (int) reader_fail(rd, err, "policy protocol line too long");
    if (len == 0)
        return 1;
    if (memchr(line, '\0', len) != NULL)
        return (int) reader_fail(rd, err, "policy protocol line contains a NUL byte");
    if (memchr(line, '\r', len) != NULL)
        return (int) reader_fail(rd, err, "policy protocol line contains a CR");
    eq = memchr(line, '=', len);
    if (eq == NULL)
        return (int) reader_fail(rd, err, "policy protocol line without \"=\"");
    if (!valid_name(line, (size_t) (eq - line)))
        return (int) reader_fail(rd, err, "policy protocol attribute name is not [a-z0-9_]+");
    if (rd->block.count >= POLICY_MAX_ATTRS)
        return (int) reader_fail(rd, err, "too many policy protocol attributes");
    rd->block.attrs[rd->block.count].name = xstrndup(line, (size_t) (eq - line));
    rd->block.attrs[rd->block.count].value = xstrndup(eq + 1, len - (size_t) (eq + 1 - line));
    rd->block.count++;
    sb_reset(&rd->line);
    return 0;
}

long policy_reader_feed(struct policy_reader *rd, const char *data, size_t len, bool *done,
                        struct strbuf *err)
{
    size_t  used = 0;

    *done = false;
    while (used < len) {
        const char *nl = memchr(data + used, '\n', len - used);
        size_t  chunk = nl ? (size_t) (nl - (data + used)) : len - used;
        int     r;

        /*
         * Refuse an over-long line as soon as it is over-long, not when its LF
         * finally arrives: a peer that never sends one must not fill memory.
         */
        if (sb_len(&rd->line) + chunk > POLICY_MAX_LINE + 1)
            return reader_fail(rd, err, "policy protocol line too long");
        sb_append(&rd->line, data + used, chunk);
        used += chunk;
        if (nl == NULL)
            break;
        used++;                         /* the LF */
        r = reader_line(rd, err);
        if (r < 0)
            return -1;
        if (r == 1) {
            sb_reset(&rd->line);
            *done = true;
            break;
        }
    }
    return (long) used;
}

void policy_reader_take(struct policy_reader *rd, struct policy_block *out)
{
    *out = rd->block;
    memset(&rd->block, 0, sizeof(rd->block));
}

void policy_block_free(struct policy_block *b)
{
    for (size_t i = 0; i < b->count && i < POLICY_MAX_ATTRS; i++) {
        free(b->attrs[i].name);
        free(b->attrs[i].value);
        b->attrs[i].name = b->attrs[i].value = NULL;
    }
    b->count = 0;
}

const char *policy_block_get(const struct policy_block *b, const char *name)
{
    for (size_t i = 0; i < b->count && i < POLICY_MAX_ATTRS; i++)
        if (strcmp(b->attrs[i].name, name) == 0)
            return b->attrs[i].value;
    return NULL;
}

int policy_block_add(struct policy_block *b, const char *name, const char *value)
{
    if (b->count >= POLICY_MAX_ATTRS)
        return -1;
    if (!valid_name(name, strlen(name)) || strpbrk(value, "\r\n") != NULL)
        return -1;
    /* the peer would refuse the line: do not send what we could not read back */
    if (strlen(name) + 1 + strlen(value) > POLICY_MAX_LINE)
        return -1;
    b->attrs[b->count].name = xstrdup(name);
    b->attrs[b->count].value = xstrdup(value);
    b->count++;
    return 0;
}

void policy_block_format(const struct policy_block *b, struct strbuf *out)
{
    for (size_t i = 0; i < b->count && i < POLICY_MAX_ATTRS; i++)
        sb_printf(out, "%s=%s\n", b->attrs[i].name, b->attrs[i].value);
    sb_putc(out, '\n');
}
