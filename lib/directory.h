/*
 * directory - who lives here: the domain classes and tables of DESIGN.md
 * section 3, shared by smtpd (recipient checks at RCPT) and qmgr (routing).
 *
 *   mydestination            local class: only aliases live there (no Unix mailboxes)
 *   virtual_alias_domains    alias class: every address must be an alias
 *   virtual_mailbox_domains  mailbox class: a mailbox or an alias must exist
 *   relay_domains            relay class (backup MX): accepted, forwarded
 *   anything else            other: relayed only for trusted clients
 *
 * Domain lists are Postfix's: literal names and type:table entries mixed
 * ("example.com, hash:/etc/postern/virtual_domains"); a table entry matches
 * when the domain is a key. Address tables (virtual_mailbox_maps,
 * virtual_alias_maps) are looked up as user@domain, then @domain (catch-all).
 * Addresses are compared case-insensitively (the maps fold keys).
 *
 * Alias expansion is recursive and one-to-many, as Postfix's virtual(5):
 * an address that lists itself among its destinations is delivered as it is;
 * a cycle or more than 1000 results or 100 levels is a permanent error.
 */
#ifndef POSTERN_DIRECTORY_H
#define POSTERN_DIRECTORY_H

#include "config.h"
#include "map.h"
#include "strbuf.h"
#include "strlist.h"

struct service;

enum domain_class {
    DOMAIN_LOCAL,                       /* mydestination */
    DOMAIN_ALIAS,                       /* virtual_alias_domains */
    DOMAIN_MAILBOX,                     /* virtual_mailbox_domains */
    DOMAIN_RELAY,                       /* relay_domains */
    DOMAIN_OTHER,
};

enum directory_status {
    DIRECTORY_OK = 0,
    DIRECTORY_TEMPFAIL = -1,            /* a table could not be read: try again later */
    DIRECTORY_PERMFAIL = -2,            /* alias loop or limit: the address cannot be delivered */
};

struct directory;

/* directory_open - the tables main.cf names; NULL with err naming the parameter */
struct directory *directory_open(struct config *cfg, struct strbuf *err);
void directory_close(struct directory *dir);
/* directory_watch - make the service retire when one of the tables is replaced out of reach */
void directory_watch(struct directory *dir, struct service *svc);
/*
 * directory_refresh - before a bounce: look at the table files now. Tables
 * that can be reopened are (repeat the lookup); true if one was replaced
 * beyond reach (chroot): the verdict must wait for a fresh process.
 */
bool directory_refresh(struct directory *dir);

enum directory_status directory_classify(struct directory *dir, const char *domain, enum domain_class *cls);
/* directory_mailbox - virtual_mailbox_maps: MAP_FOUND with the path (relative to virtual_mailbox_base) */
enum map_status directory_mailbox(struct directory *dir, const char *address, struct strbuf *path);
/* directory_alias - virtual_alias_maps, one level: MAP_FOUND with the destination list text */
enum map_status directory_alias(struct directory *dir, const char *address, struct strbuf *dests);
/* directory_expand - final recipients of address after recursive aliasing (address itself if no alias) */
enum directory_status directory_expand(struct directory *dir, const char *address, struct strlist *out,
                                       struct strbuf *err);
const char *domain_class_name(enum domain_class cls);

#endif
