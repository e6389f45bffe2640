/*
 * policyd - the built-in greylisting policy service: shared state of its modules.
 *
 *   policyd.c           main, service skeleton glue, client connections
 *                       speaking Postfix's policy delegation protocol
 *                       (lib/policy_proto.h), limits, idle timeouts
 *   policyd_greylist.c  one request -> one action: request checks,
 *                       whitelists, the store (lib/greylist.h), its timers
 *
 * Clients are our smtpd's check_policy_service and any Postfix
 * (check_policy_service unix:private/greylist or inet:HOST:PORT).
 */
#ifndef POSTERN_POLICYD_H
#define POSTERN_POLICYD_H

#include "policy_proto.h"
#include "service.h"
#include "strbuf.h"

#define POLICYD_MAX_CLIENTS     1024    /* connections: one per smtpd process, typically */
#define POLICYD_IDLE_SECS       1800    /* Postfix closes after 300s idle; this is a backstop */

/* policyd_greylist.c */
/* policyd_greylist_init - settings and whitelists, while privileged; fatal on a bad setting */
void policyd_greylist_init(struct service *svc);
/* policyd_greylist_ready - open the store in data_directory, start the sync and expiry timers */
void policyd_greylist_ready(struct service *svc);
/* policyd_greylist_stop - flush and close the store (a successor may be opening it) */
void policyd_greylist_stop(void);
/* policyd_greylist_request - the reply block (with its empty line) for one request */
void policyd_greylist_request(const struct policy_block *req, struct strbuf *reply);

#endif
