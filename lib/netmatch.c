/*
 * netmatch - client address against a list of networks (mynetworks).
 *
 * Interface (netmatch.h): netmatch_parse(), netmatch_sockaddr(),
 * netmatch_text(), netmatch_free().
 *
 * Entries, separated by commas and/or white space, as Postfix writes them:
 *   192.0.2.0/24  192.0.2.7          IPv4 network or host
 *   [2001:db8::]/32  [::1]  ::1/128  IPv6, brackets optional
 * The mask length must be 0..32 (IPv4) or 0..128 (IPv6), plain decimal.
 * Like Postfix, an entry with bits set beyond its prefix ("127.0.0.1/8") is
 * an error that suggests the network meant ("127.0.0.0/8"): whoever wrote
 * it may have meant the host, and guessing either way opens or closes relay.
 * An IPv6 entry inside ::ffff:0:0/96 is kept as the IPv4 network it names,
 * and IPv4-mapped IPv6 clients are compared as IPv4, so the two spellings of
 * an IPv4 client match the same entries.
 *
 * Diagnostics: netmatch_parse() fails on the first bad entry, naming it, with
 * a hint; tables, file names, host names and "!" negation are not supported
 * and say so.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "strbuf.h"
#include "netmatch.h"

struct net_entry {
    int     family;                     /* AF_INET or AF_INET6 */
    unsigned char addr[16];             /* network byte order; 4 used for IPv4 */
    unsigned prefix;                    /* mask length */
};

struct netmatch {
    struct net_entry *entries;
    size_t  count;
};

static const unsigned char v4mapped_prefix[12] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

/* prefix_equal - the first bits bits of a and b are equal */
static bool prefix_equal(const unsigned char *a, const unsigned char *b, unsigned bits)
{
    size_t  bytes = bits / 8;
    unsigned rest = bits % 8;
    unsigned char mask;

    if (memcmp(a, b, bytes) != 0)
        return false;
    if (rest == 0)
        return true;
    mask = (unsigned char) (0xff << (8 - rest));
    return (a[bytes] & mask) == (b[bytes] & mask);
}

/* clear_host_bits - addr with the bits after the prefix cleared */
static void clear_host_bits(unsigned char *addr, size_t len, unsigned bits)
{
    for (size_t i = 0; i < len; i++) {
        unsigned first = (unsigned) i * 8;

        if (first >= bits)
            addr[i] = 0;
        else if (bits - first < 8)
            addr[i] &= (unsigned char) (0xff << (8 - (bits - first)));
    }
}

/* host_bits_set - any bit after the first bits of addr (len bytes) is set */
static bool host_bits_set(const unsigned char *addr, size_t len, unsigned bits)
{
    unsigned char net[16];

    memcpy(net, addr, len);
    clear_host_bits(net, len, bits);
    return memcmp(net, addr, len) != 0;
}

/* parse_prefix - plain decimal 0..max; -1 if not */
static int parse_prefix(const char *text, unsigned max)
{
    unsigned v = 0;

    if (*text == '\0' || strlen(text) > 3)
        return -1;
    for (const char *p = text; *p; p++) {
        if (!isdigit((unsigned char) *p))
            return -1;
        v = v * 10 + (unsigned) (*p - '0');
    }
    return v <= max ? (int) v : -1;
}

/* looks_like_table - "type:name": a non-hex letter before the first colon */
static bool looks_like_table(const char *item)
{
    for (const char *p = item; *p && *p != ':'; p++)
        if (isalpha((unsigned char) *p) && !isxdigit((unsigned char) *p))
            return strchr(p, ':') != NULL;
    return false;
}

/* parse_entry - one list item into e; -1 with err naming it */
static int parse_entry(const char *item, struct net_entry *e, struct strbuf *err)
{
    struct strbuf host = STRBUF_INIT;
    const char *slash, *end;
    bool    bracketed = false;
    int     prefix = -1;
    unsigned max;
    int     status = -1;

    if (item[0] == '!' || item[0] == '/' || (item[0] != '[' && strchr(item, ':') == NULL
                                             && strchr(item, '.') == NULL)) {
        sb_printf(err, "'%s': not a network address; expected e.g. 192.0.2.0/24 or "
                  "[2001:db8::]/32 (tables, files, host names and '!' are not supported "
                  "here)", item);
        return -1;
    }
    if (looks_like_table(item)) {
        sb_printf(err, "'%s': tables are not supported in a network list; list the "
                  "networks themselves", item);
        return -1;
    }
    if (item[0] == '[') {
        if ((end = strchr(item, ']')) == NULL) {
            sb_printf(err, "'%s': missing ']'", item);
            return -1;
        }
        bracketed = true;
        sb_append(&host, item + 1, (size_t) (end - item - 1));
        slash = end + 1;
        if (*slash != '\0' && *slash != '/') {
            sb_printf(err, "'%s': unexpected text after ']'; expected [address]/length", item);
            goto out;
        }
    } else {
        slash = strchr(item, '/');
        sb_append(&host, item, slash ? (size_t) (slash - item) : strlen(item));
        if (slash == NULL)
            slash = "";
    }
    memset(e, 0, sizeof(*e));
    if (inet_pton(AF_INET6, sb_str(&host), e->addr) == 1) {
        e->family = AF_INET6;
        max = 128;
    } else if (inet_pton(AF_INET, sb_str(&host), e->addr) == 1) {
        e->family = AF_INET;
        max = 32;
    } else {
        sb_printf(err, "'%s': '%s' is not a valid %s address", item, sb_str(&host),
                  strchr(sb_str(&host), ':') ? "IPv6" : "IPv4");
        goto out;
    }
    if (*slash == '/') {
        if ((prefix = parse_prefix(slash + 1, max)) < 0) {
            sb_printf(err, "'%s': bad mask length '%s'; expected a number from 0 to %u",
                      item, slash + 1, max);
            goto out;
        }
    } else {
        prefix = (int) max;
    }
    e->prefix = (unsigned) prefix;
    if (host_bits_set(e->addr, max / 8, e->prefix)) {
        unsigned char net[16];
        char    text[INET6_ADDRSTRLEN];

        memcpy(net, e->addr, sizeof(net));
        clear_host_bits(net, max / 8, e->prefix);
        inet_ntop(e->family, net, text, sizeof(text));
        sb_printf(err, "'%s': non-null host address bits; perhaps you mean %s%s%s/%u",
                  item, bracketed ? "[" : "", text, bracketed ? "]" : "", e->prefix);
        goto out;
    }
    /* An IPv4 network written as IPv6: compare it as IPv4, as the clients are. */
    if (e->family == AF_INET6 && e->prefix >= 96
        && memcmp(e->addr, v4mapped_prefix, sizeof(v4mapped_prefix)) == 0) {
        memmove(e->addr, e->addr + 12, 4);
        memset(e->addr + 4, 0, 12);
        e->family = AF_INET;
        e->prefix -= 96;
    }
    status = 0;

out:
    sb_free(&host);
    return status;
}

/* netmatch_parse - the list; NULL with err on the first bad entry */
struct netmatch *netmatch_parse(const char *list, struct strbuf *err)
{
    struct netmatch *nm = xcalloc(1, sizeof(*nm));
    const char *sep = ", \t\r\n";
    const char *p = list ? list : "";
    size_t  cap = 0;

    sb_reset(err);
    while (*p) {
        size_t  len;
        char   *item;
        struct net_entry e;
        int     ret;

        p += strspn(p, sep);
        if ((len = strcspn(p, sep)) == 0)
            break;
        item = xstrndup(p, len);
        p += len;
        ret = parse_entry(item, &e, err);
        free(item);
        if (ret < 0) {
            netmatch_free(nm);
            return NULL;
        }
        if (nm->count == cap) {
            cap = cap ? cap * 2 : 8;
            nm->entries = xreallocarray(nm->entries, cap, sizeof(*nm->entries));
        }
        nm->entries[nm->count++] = e;
    }
    return nm;
}

/* match - family and address in network byte order (IPv4-mapped already unwrapped) */
static bool match(const struct netmatch *nm, int family, const unsigned char *addr)
{
    if (nm == NULL)
        return false;
    for (size_t i = 0; i < nm->count; i++)
        if (nm->entries[i].family == family
            && prefix_equal(nm->entries[i].addr, addr, nm->entries[i].prefix))
            return true;
    return false;
}

/* match6 - an IPv6 address, compared as IPv4 when it is IPv4-mapped */
static bool match6(const struct netmatch *nm, const unsigned char *addr)
{
    if (memcmp(addr, v4mapped_prefix, sizeof(v4mapped_prefix)) == 0)
        return match(nm, AF_INET, addr + 12);
    return match(nm, AF_INET6, addr);
}

/* netmatch_sockaddr - is the socket address (AF_INET/AF_INET6) listed? */
bool netmatch_sockaddr(const struct netmatch *nm, const struct sockaddr *sa)
{
    if (sa == NULL)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *) sa;

        return match(nm, AF_INET, (const unsigned char *) &sin->sin_addr);
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *) sa;

        return match6(nm, sin6->sin6_addr.s6_addr);
    }
    return false;
}

/* netmatch_text - is the address text ("192.0.2.7", "::1", "[::1]") listed? */
bool netmatch_text(const struct netmatch *nm, const char *addr)
{
    unsigned char bin[16];
    char    buf[INET6_ADDRSTRLEN + 2];
    size_t  len;

    if (addr == NULL || (len = strlen(addr)) >= sizeof(buf))
        return false;
    if (addr[0] == '[' && len >= 2 && addr[len - 1] == ']') {
        memcpy(buf, addr + 1, len - 2);
        buf[len - 2] = '\0';
        addr = buf;
    }
    if (inet_pton(AF_INET, addr, bin) == 1)
        return match(nm, AF_INET, bin);
    if (inet_pton(AF_INET6, addr, bin) == 1)
        return match6(nm, bin);
    return false;
}

/* netmatch_free - release the list */
void netmatch_free(struct netmatch *nm)
{
    if (nm == NULL)
        return;
    free(nm->entries);
    free(nm);
}
