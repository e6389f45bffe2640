/*
 * strbuf - growable NUL-terminated string. See strbuf.h.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "strbuf.h"

void sb_init(struct strbuf *sb)
{
    sb->data = NULL;
    sb->len = sb->cap = 0;
}

void sb_free(struct strbuf *sb)
{
    free(sb->data);
    sb_init(sb);
}

/* sb_reserve - make room for len more bytes plus the terminator */
static void sb_reserve(struct strbuf *sb, size_t more)
{
    size_t  need;

    if (more > (size_t) -1 / 2 - sb->len)
        more = (size_t) -1 / 2;         /* xrealloc reports the failure */
    need = sb->len + more + 1;
    if (need <= sb->cap)
        return;
    size_t  cap = sb->cap ? sb->cap : 64;

    while (cap < need)
        cap *= 2;
    sb->data = xrealloc(sb->data, cap);
    sb->cap = cap;
}

void sb_reset(struct strbuf *sb)
{
    sb_truncate(sb, 0);
}

void sb_truncate(struct strbuf *sb, size_t len)
{
    if (sb->data == NULL)
        sb_reserve(sb, 0);
    if (len < sb->len)
        sb->len = len;
    sb->data[sb->len] = '\0';
}

void sb_append(struct strbuf *sb, const void *data, size_t len)
{
    sb_reserve(sb, len);
    if (len)
        memcpy(sb->data + sb->len, data, len);
    sb->len += len;
    sb->data[sb->len] = '\0';
}

void sb_puts(struct strbuf *sb, const char *s)
{
    sb_append(sb, s, strlen(s));
}

void sb_putc(struct strbuf *sb, int c)
{
    char    ch = (char) c;

    sb_append(sb, &ch, 1);
}

void sb_set(struct strbuf *sb, const char *s)
{
    sb_reset(sb);
    sb_puts(sb, s);
}

void sb_vprintf(struct strbuf *sb, const char *fmt, va_list ap)
{
    va_list ap2;
    int     n;

    sb_reserve(sb, 64);
    va_copy(ap2, ap);
    n = vsnprintf(sb->data + sb->len, sb->cap - sb->len, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return;
    if ((size_t) n >= sb->cap - sb->len) {
        sb_reserve(sb, (size_t) n);
        n = vsnprintf(sb->data + sb->len, sb->cap - sb->len, fmt, ap);
        if (n < 0) {
            sb->data[sb->len] = '\0';
            return;
        }
    }
    sb->len += (size_t) n;
}

void sb_printf(struct strbuf *sb, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    sb_vprintf(sb, fmt, ap);
    va_end(ap);
}

void sb_lowercase(struct strbuf *sb)
{
    for (size_t i = 0; i < sb->len; i++)
        sb->data[i] = (char) tolower((unsigned char) sb->data[i]);
}

char *sb_detach(struct strbuf *sb)
{
    char   *p;

    if (sb->data == NULL)
        sb_truncate(sb, 0);             /* an empty string, not an unterminated buffer */
    p = sb->data;
    sb_init(sb);
    return p;
}
