/*
 * header_cache - the envelope header fields of messages, kept in memory by
 * one process (see header_cache.h).
 *
 * A chained hash table on the key finds entries; a doubly linked list in
 * order of use finds the least recently used one to evict. Each entry is one
 * allocation with its header text inline. The table doubles when it holds
 * more entries than buckets. Everything is private to the process and its
 * event loop: no locking.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mem.h"
#include "strbuf.h"
#include "header_cache.h"

#define HEADER_CACHE_MIN_BUCKETS 1024
/* what an entry costs beyond its text, counted against the limit */
#define ENTRY_OVERHEAD  (sizeof(struct entry) + 2 * sizeof(void *))

struct entry {
    struct header_cache_key key;
    struct entry *chain;                /* next in the bucket */
    struct entry *newer, *older;        /* the use list */
    size_t  len;
    char    text[];
};

static struct {
    struct entry **buckets;
    size_t  nbuckets;                   /* a power of two, or 0 before the first put */
    size_t  entries, bytes, limit;
    struct entry *newest, *oldest;
    bool    limit_set;
} cache;

static const char *const fields[] = {HEADER_CACHE_FIELDS};

/* header_cache_has_field - one of the cached fields? */
bool header_cache_has_field(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (strlen(fields[i]) == len && strncasecmp(fields[i], name, len) == 0)
            return true;
    return false;
}

/* hash - of the key (FNV-1a over its fields, whatever the padding holds) */
static size_t hash(const struct header_cache_key *k)
{
    uint64_t v[4] = {k->dev, k->ino, k->uidvalidity, k->uid};
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < 4; i++)
        for (int b = 0; b < 64; b += 8) {
            h ^= (v[i] >> b) & 0xff;
            h *= 1099511628211ULL;
        }
    return (size_t) (h ^ (h >> 29));
}

static bool same_key(const struct header_cache_key *a, const struct header_cache_key *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->uidvalidity == b->uidvalidity && a->uid == b->uid;
}

/* unlink_use - take e out of the use list */
static void unlink_use(struct entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        cache.newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        cache.oldest = e->newer;
    e->newer = e->older = NULL;
}

/* link_newest - put e at the new end of the use list */
static void link_newest(struct entry *e)
{
    e->older = cache.newest;
    e->newer = NULL;
    if (cache.newest)
        cache.newest->newer = e;
    cache.newest = e;
    if (cache.oldest == NULL)
        cache.oldest = e;
}

/* find - the entry's bucket link (for removal) and the entry, or NULL */
static struct entry **find(const struct header_cache_key *k)
{
    struct entry **p;

    if (cache.nbuckets == 0)
        return NULL;
    for (p = &cache.buckets[hash(k) & (cache.nbuckets - 1)]; *p != NULL; p = &(*p)->chain)
        if (same_key(&(*p)->key, k))
            return p;
    return NULL;
}

/* remove_entry - out of the table and the list, and freed */
static void remove_entry(struct entry *e)
{
    struct entry **p = find(&e->key);

    if (p != NULL)
        *p = e->chain;
    unlink_use(e);
    cache.entries--;
    cache.bytes -= ENTRY_OVERHEAD + e->len;
    free(e);
}

/* evict - drop the least recently used entries until bytes + room fit the limit */
static void evict(size_t room)
{
    while (cache.oldest != NULL && cache.bytes + room > cache.limit)
        remove_entry(cache.oldest);
}

/* grow - twice the buckets (or the first ones), entries rehashed */
static void grow(void)
{
    size_t  n = cache.nbuckets ? cache.nbuckets * 2 : HEADER_CACHE_MIN_BUCKETS;
    struct entry **b = xcalloc(n, sizeof(*b));

    for (size_t i = 0; i < cache.nbuckets; i++) {
        struct entry *e = cache.buckets[i], *next;

        for (; e != NULL; e = next) {
            size_t  h = hash(&e->key) & (n - 1);

            next = e->chain;
            e->chain = b[h];
            b[h] = e;
        }
    }
    free(cache.buckets);
    cache.buckets = b;
    cache.nbuckets = n;
}

/* header_cache_set_limit - the byte limit; shrinking evicts at once */
void header_cache_set_limit(size_t bytes)
{
    cache.limit = bytes;
    cache.limit_set = true;
    evict(0);
}

/* header_cache_get - a hit becomes the most recently used entry */
const char *header_cache_get(const struct header_cache_key *key, size_t *len)
{
    struct entry **p = find(key);

    if (p == NULL)
        return NULL;
    unlink_use(*p);
    link_newest(*p);
    *len = (*p)->len;
    return (*p)->text;
}

/* field_name_len - the length of the field name a header line starts with, 0 if none */
static size_t field_name_len(const char *line, size_t len)
{
    size_t  n = 0;

    size_t  end;

    while (n < len && line[n] != ':' && line[n] > ' ' && line[n] < 127)
        n++;
    for (end = n; end < len && (line[end] == ' ' || line[end] == '\t'); end++)
        ;                               /* "Subject :" is still a Subject */
    return n > 0 && end < len && line[end] == ':' ? n : 0;
}

/* header_cache_extract - the lines of the cached fields, then a blank line */
void header_cache_extract(const char *hdr, size_t len, struct strbuf *out)
{
    const char *eol = "\n";
    bool    keep = false;
    size_t  pos = 0;

    sb_reset(out);
    while (pos < len) {
        const char *line = hdr + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t  n = nl ? (size_t) (nl - line) + 1 : len - pos;
        size_t  text = n - (nl ? 1 : 0);

        if (text > 0 && line[text - 1] == '\r')
            text--;
        if (text == 0)
            break;                      /* the blank line: end of the header */
        if (pos == 0 && nl && n >= 2 && line[n - 2] == '\r')
            eol = "\r\n";
        if (line[0] == ' ' || line[0] == '\t') {
            /* a continuation belongs to the field before it */
        } else {
            size_t  name = field_name_len(line, text);

            keep = name > 0 && header_cache_has_field(line, name);
        }
        if (keep) {
            sb_append(out, line, text);
            sb_puts(out, eol);
        }
        pos += n;
    }
    sb_puts(out, eol);
}

/* header_cache_put - store (or replace) the entry of key */
void header_cache_put(const struct header_cache_key *key, const char *hdr, size_t len)
{
    struct strbuf text = STRBUF_INIT;
    struct entry **old, *e;
    size_t  cost;

    if (!cache.limit_set)
        header_cache_set_limit(32 * 1024 * 1024);
    if (cache.limit == 0)
        return;
    header_cache_extract(hdr, len, &text);
    cost = ENTRY_OVERHEAD + text.len;
    if (cost > cache.limit / 16) {      /* one huge header must not flush everything */
        sb_free(&text);
        return;
    }
    if ((old = find(key)) != NULL)
        remove_entry(*old);
    evict(cost);
    if (cache.entries >= cache.nbuckets)
        grow();
    e = xmalloc(sizeof(*e) + text.len + 1);
    e->key = *key;
    e->len = text.len;
    memcpy(e->text, text.data, text.len);
    e->text[text.len] = '\0';
    size_t  h = hash(key) & (cache.nbuckets - 1);

    e->chain = cache.buckets[h];
    cache.buckets[h] = e;
    e->newer = e->older = NULL;
    link_newest(e);
    cache.entries++;
    cache.bytes += cost;
    sb_free(&text);
}

/* header_cache_stats - entries and bytes now */
void header_cache_stats(size_t *entries, size_t *bytes)
{
    *entries = cache.entries;
    *bytes = cache.bytes;
}

/* header_cache_clear - everything freed; the limit stays */
void header_cache_clear(void)
{
    while (cache.oldest != NULL)
        remove_entry(cache.oldest);
    free(cache.buckets);
    cache.buckets = NULL;
    cache.nbuckets = 0;
}
