/*
 * auth_throttle - failure counting, delays and lockouts for authd. See auth_throttle.h.
 *
 * A chained hash table (seeded hash: the keys are user names and addresses
 * chosen by clients, so the bucket of a key must not be predictable) plus an
 * LRU list for eviction when max_entries is reached.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "auth_throttle.h"
#include "mem.h"

struct entry {
    struct entry *hnext;                /* hash chain */
    struct entry *prev, *next;          /* LRU list: head = most recently touched */
    uint64_t hash;
    unsigned failures;
    long long window_start;
    long long locked_until;             /* 0: not locked */
    char    key[];
};

struct auth_throttle {
    struct auth_throttle_config cfg;
    struct entry **buckets;
    size_t  nbuckets;                   /* power of 2 */
    size_t  count;
    struct entry *head, *tail;
    uint64_t seed;
};

/* hash_key - FNV-1a over the key, started from a per-table random seed */
static uint64_t hash_key(const struct auth_throttle *t, const char *key)
{
    uint64_t h = 1469598103934665603ULL ^ t->seed;

    for (const unsigned char *p = (const unsigned char *) key; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    h ^= h >> 29;                       /* spread the high bits into the bucket index */
    return h;
}

struct auth_throttle *auth_throttle_create(const struct auth_throttle_config *cfg)
{
    struct auth_throttle *t = xcalloc(1, sizeof(*t));

    t->cfg = *cfg;
    if (t->cfg.max_entries == 0)
        t->cfg.max_entries = 1;
    t->nbuckets = 64;
    while (t->nbuckets < t->cfg.max_entries && t->nbuckets < ((size_t) 1 << 24))
        t->nbuckets <<= 1;
    t->buckets = xcalloc(t->nbuckets, sizeof(*t->buckets));
    if (getrandom(&t->seed, sizeof(t->seed), 0) != (ssize_t) sizeof(t->seed))
        t->seed = (uint64_t) (uintptr_t) t ^ 0x9e3779b97f4a7c15ULL;
    return t;
}

void auth_throttle_free(struct auth_throttle *t)
{
    struct entry *e, *next;

    if (t == NULL)
        return;
    for (e = t->head; e; e = next) {
        next = e->next;
        free(e);
    }
    free(t->buckets);
    free(t);
}

/* lru_unlink - take e out of the LRU list */
static void lru_unlink(struct auth_throttle *t, struct entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        t->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        t->tail = e->prev;
    e->prev = e->next = NULL;
}

/* lru_front - make e the most recently touched */
static void lru_front(struct auth_throttle *t, struct entry *e)
{
    e->next = t->head;
    e->prev = NULL;
    if (t->head)
        t->head->prev = e;
    t->head = e;
    if (t->tail == NULL)
        t->tail = e;
}

/* find - the entry for key, with a pointer to the link that holds it */
static struct entry *find(struct auth_throttle *t, const char *key, struct entry ***linkp)
{
    uint64_t h = hash_key(t, key);
    struct entry **link = &t->buckets[h & (t->nbuckets - 1)];

    for (; *link; link = &(*link)->hnext) {
        if ((*link)->hash == h && strcmp((*link)->key, key) == 0) {
            if (linkp)
                *linkp = link;
            return *link;
        }
    }
    if (linkp)
        *linkp = link;
    return NULL;
}

/* remove_entry - unlink e from its chain and the LRU list, and free it */
static void remove_entry(struct auth_throttle *t, struct entry *e)
{
    struct entry **link = &t->buckets[e->hash & (t->nbuckets - 1)];

    while (*link != e)
        link = &(*link)->hnext;
    *link = e->hnext;
    lru_unlink(t, e);
    free(e);
    t->count--;
}

/* expire - a lockout that ended starts the key afresh */
static void expire(struct entry *e, long long now)
{
    if (e->locked_until != 0 && now >= e->locked_until) {
        e->locked_until = 0;
        e->failures = 0;
    }
}

long long auth_throttle_locked(struct auth_throttle *t, const char *key, long long now_ms)
{
    struct entry *e = find(t, key, NULL);

    if (e == NULL || e->locked_until == 0)
        return 0;
    if (now_ms >= e->locked_until) {
        expire(e, now_ms);
        return 0;
    }
    return e->locked_until - now_ms;
}

long long auth_throttle_failure(struct auth_throttle *t, const char *key, long long now_ms,
                                bool *locked_now)
{
    struct entry **link;
    struct entry *e = find(t, key, &link);
    long long delay;

    *locked_now = false;
    if (e == NULL) {
        size_t  klen = strlen(key);

        if (t->count >= t->cfg.max_entries) {
            remove_entry(t, t->tail);
            find(t, key, &link);        /* the eviction may have changed our chain */
        }
        e = xcalloc(1, sizeof(*e) + klen + 1);
        memcpy(e->key, key, klen + 1);
        e->hash = hash_key(t, key);
        *link = e;
        t->count++;
    } else {
        lru_unlink(t, e);
    }
    lru_front(t, e);

    expire(e, now_ms);
    if (e->locked_until == 0 && (e->failures == 0 || now_ms - e->window_start >= t->cfg.window_ms)) {
        e->failures = 0;
        e->window_start = now_ms;
    }
    if (e->failures < UINT32_MAX)
        e->failures++;
    if (e->locked_until == 0 && t->cfg.limit > 0 && e->failures >= t->cfg.limit) {
        e->locked_until = now_ms + (t->cfg.lockout_ms > 0 ? t->cfg.lockout_ms : 1);
        *locked_now = true;
    }

    /* At most ~63 doublings: a zero delay would otherwise loop once per failure
     * (millions in a window with no limit), and a big one must not overflow. */
    delay = t->cfg.delay_ms;
    for (unsigned i = 1; i < e->failures && delay > 0 && delay < t->cfg.delay_max_ms; i++)
        delay = delay > LLONG_MAX / 2 ? LLONG_MAX : delay * 2;
    if (delay > t->cfg.delay_max_ms)
        delay = t->cfg.delay_max_ms;
    return delay < 0 ? 0 : delay;
}

void auth_throttle_success(struct auth_throttle *t, const char *key)
{
    struct entry *e = find(t, key, NULL);

    if (e != NULL)
        remove_entry(t, e);
}

size_t auth_throttle_count(const struct auth_throttle *t)
{
    return t->count;
}

void auth_throttle_ip_key(struct strbuf *out, const char *ip)
{
    struct in6_addr a6;
    struct in_addr a4;
    char    addr[INET6_ADDRSTRLEN];
    char    text[INET6_ADDRSTRLEN];
    size_t  len = strcspn(ip, "%");     /* a zone ("fe80::1%eth0") names no other host */

    sb_set(out, "ip:");
    /*
     * One host has many spellings ("::ffff:192.0.2.7" on a dual-stack socket,
     * "192.0.2.07", "2001:DB8::1"); each must count against the same key, or
     * switching spellings would escape the lockout.
     */
    if (len < sizeof(addr)) {
        memcpy(addr, ip, len);
        addr[len] = '\0';
        if (inet_pton(AF_INET6, addr, &a6) == 1) {
            if (IN6_IS_ADDR_V4MAPPED(&a6)) {
                memcpy(&a4, &a6.s6_addr[12], 4);
                if (inet_ntop(AF_INET, &a4, text, sizeof(text)) != NULL) {
                    sb_puts(out, text);
                    return;
                }
            } else {
                /* One host usually owns a whole /64: counting per address would let it rotate freely. */
                memset(&a6.s6_addr[8], 0, 8);
                if (inet_ntop(AF_INET6, &a6, text, sizeof(text)) != NULL) {
                    sb_puts(out, text);
                    sb_puts(out, "/64");
                    return;
                }
            }
        } else if (inet_aton(addr, &a4) != 0 && strspn(addr, "0123456789.xXabcdefABCDEF") == len) {
            /* inet_aton also reads the classic forms ("192.0.2.07" octal, "3221225985"). */
            if (inet_ntop(AF_INET, &a4, text, sizeof(text)) != NULL) {
                sb_puts(out, text);
                return;
            }
        }
    }
    sb_puts(out, ip);
}
