/*
 * netmatch - is a client address in a list of networks (mynetworks)?
 *
 * The list is Postfix's: "127.0.0.0/8 [::1]/128 192.0.2.7 [2001:db8::]/32",
 * separated by commas and/or white space; an address without /len is a
 * host. IPv4-mapped IPv6 clients (::ffff:192.0.2.7) match IPv4 entries.
 * A bad entry is an error naming it (a typo in mynetworks must not silently
 * make a relay open or closed).
 */
#ifndef POSTERN_NETMATCH_H
#define POSTERN_NETMATCH_H

#include <stdbool.h>
#include <sys/socket.h>
#include "strbuf.h"

struct netmatch;

struct netmatch *netmatch_parse(const char *list, struct strbuf *err);
bool netmatch_sockaddr(const struct netmatch *nm, const struct sockaddr *sa);
bool netmatch_text(const struct netmatch *nm, const char *addr);   /* "192.0.2.7", "::1" */
void netmatch_free(struct netmatch *nm);

#endif
