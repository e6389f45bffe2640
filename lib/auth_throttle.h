/*
 * auth_throttle - brute-force defence for authd: failure counting, reply
 * delays and temporary lockouts, per key ("ip:1.2.3.4", "user:alice@x").
 *
 * Each key counts failures in a window that starts at its first failure and
 * lasts window_ms; a failure's reply is delayed delay_ms * 2^(failures-1),
 * at most delay_max_ms. The failure that reaches `limit` locks the key for
 * lockout_ms: while locked, the caller refuses at once without checking the
 * password (the lockout is not extended by attempts made during it). A success
 * forgets the key. The clock is passed in (milliseconds, any monotonic
 * origin), so tests drive time. Memory is bounded: at most max_entries keys,
 * the least recently touched one is evicted to make room (an attacker can
 * flush old entries only by spending a key per eviction, and IPv6 addresses
 * count per /64 through auth_throttle_ip_key()).
 *
 * Interface:
 *   auth_throttle_create(cfg) / auth_throttle_free(t)
 *   auth_throttle_locked(t, key, now)     ms of lockout left, 0 if free
 *   auth_throttle_failure(t, key, now, &locked_now)   delay for this failure's reply
 *   auth_throttle_success(t, key)         forget the key
 *   auth_throttle_count(t)                keys held (tests, status)
 *   auth_throttle_ip_key(out, ip)         "ip:ADDR", IPv6 cut to its /64
 */
#ifndef POSTERN_AUTH_THROTTLE_H
#define POSTERN_AUTH_THROTTLE_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

struct auth_throttle_config {
    long long delay_ms;                 /* delay of the first failure (0: no delays) */
    long long delay_max_ms;             /* cap of the doubling */
    unsigned limit;                     /* failures within the window that lock (0: never) */
    long long window_ms;
    long long lockout_ms;
    size_t  max_entries;                /* at least 1 */
};

struct auth_throttle;

struct auth_throttle *auth_throttle_create(const struct auth_throttle_config *cfg);
void auth_throttle_free(struct auth_throttle *t);

/* auth_throttle_locked - milliseconds of lockout left for key at now; 0 when not locked */
long long auth_throttle_locked(struct auth_throttle *t, const char *key, long long now_ms);
/* auth_throttle_failure - count a failure; the reply delay in ms; *locked_now when this failure locked the key */
long long auth_throttle_failure(struct auth_throttle *t, const char *key, long long now_ms,
                                bool *locked_now);
/* auth_throttle_success - forget key (its failures and any delay) */
void auth_throttle_success(struct auth_throttle *t, const char *key);
/* auth_throttle_count - number of keys held */
size_t auth_throttle_count(const struct auth_throttle *t);
/* auth_throttle_ip_key - set out to "ip:" + the address, an IPv6 address cut to "PREFIX::/64"; unparsable text is used as is */
void auth_throttle_ip_key(struct strbuf *out, const char *ip);

#endif
