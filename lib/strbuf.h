/*
 * strbuf - the one growable string type used for every variable-length value.
 *
 * The buffer is always NUL-terminated (sb_str() is safe to pass to C APIs) and
 * may also hold binary data (sb_len() counts it). Appends never truncate; the
 * caller bounds what it accepts from the network before appending.
 */
#ifndef POSTERN_STRBUF_H
#define POSTERN_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

struct strbuf {
    char   *data;                       /* always NUL-terminated */
    size_t  len;                        /* bytes used, excluding the NUL */
    size_t  cap;                        /* bytes allocated */
};

#define STRBUF_INIT { NULL, 0, 0 }

void    sb_init(struct strbuf *sb);
void    sb_free(struct strbuf *sb);
void    sb_reset(struct strbuf *sb);
void    sb_truncate(struct strbuf *sb, size_t len);
void    sb_append(struct strbuf *sb, const void *data, size_t len);
void    sb_puts(struct strbuf *sb, const char *s);
void    sb_putc(struct strbuf *sb, int c);
void    sb_printf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void    sb_vprintf(struct strbuf *sb, const char *fmt, va_list ap);
void    sb_set(struct strbuf *sb, const char *s);
void    sb_lowercase(struct strbuf *sb);
char   *sb_detach(struct strbuf *sb);   /* caller frees; sb is reset */

static inline const char *sb_str(const struct strbuf *sb) { return sb->data ? sb->data : ""; }
static inline size_t sb_len(const struct strbuf *sb) { return sb->len; }

#endif
