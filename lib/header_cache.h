/*
 * header_cache - the envelope header fields of messages, kept in memory by
 * one process (imapd) so that a repeated FETCH ENVELOPE, or a SEARCH on
 * Subject, From, Message-ID..., does not open every file of the mailbox again.
 *
 * An entry is keyed by what names a message's content for good: the folder
 * directory (device, inode), the folder's UIDVALIDITY and the UID (RFC 3501:
 * a UID is never reused within one UIDVALIDITY; Maildir files never change).
 * It holds the header lines of the cached fields only (HEADER_CACHE_FIELDS,
 * continuation lines included, in their order), ending with a blank line, so
 * that it parses as a header block of its own and gives the same ENVELOPE and
 * the same matches as the whole header. Least recently used entries go when
 * the cache holds more than its byte limit; a limit of 0 turns it off.
 */
#ifndef POSTERN_HEADER_CACHE_H
#define POSTERN_HEADER_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct header_cache_key {
    uint64_t dev, ino;                  /* the folder directory */
    uint32_t uidvalidity, uid;
};

/* the fields an entry holds: those ENVELOPE is made of */
#define HEADER_CACHE_FIELDS \
    "Date", "Subject", "From", "Sender", "Reply-To", "To", "Cc", "Bcc", "In-Reply-To", "Message-ID"

/* header_cache_set_limit - bytes the cache may hold (evicting down to it now); 0: off */
void    header_cache_set_limit(size_t bytes);
/* header_cache_has_field - is the field name[0..len) one of HEADER_CACHE_FIELDS (any case)? */
bool    header_cache_has_field(const char *name, size_t len);
/* header_cache_get - the entry's header block, or NULL; valid until the next put */
const char *header_cache_get(const struct header_cache_key *key, size_t *len);
/* header_cache_put - remember the cached fields of hdr[0..len), a message's whole header block */
void    header_cache_put(const struct header_cache_key *key, const char *hdr, size_t len);
/* header_cache_extract - the cached fields of hdr[0..len) as a header block, into out (reset) */
struct strbuf;
void    header_cache_extract(const char *hdr, size_t len, struct strbuf *out);
/* header_cache_stats - entries and bytes held now */
void    header_cache_stats(size_t *entries, size_t *bytes);
/* header_cache_clear - drop every entry and the table */
void    header_cache_clear(void);

#endif
