/*
 * policy_server - the server end of the policy protocol (lib/policy_proto.h)
 * on a libevent bufferevent: what policyd's greylisting and virtual's
 * quota-status both do when a client's bytes arrive.
 *
 * policy_serve_input() feeds what is buffered to the reader, hands each
 * complete request to answer(), which puts the whole reply ("action=...\n\n")
 * into reply, and queues that reply. A protocol error, or a client that does
 * not read its replies (more than POLICY_MAX_UNREAD bytes waiting), means the
 * caller drops the client.
 */
#ifndef POSTERN_POLICY_SERVER_H
#define POSTERN_POLICY_SERVER_H

#include <event2/bufferevent.h>

#include "policy_proto.h"
#include "strbuf.h"

#define POLICY_MAX_UNREAD   (64 * 1024)

typedef void (*policy_answer_fn)(void *ctx, const struct policy_block *req, struct strbuf *reply);

/* policy_serve_input - answer every complete request in bev's input; -1 with err: drop the client */
int  policy_serve_input(struct policy_reader *rd, struct bufferevent *bev, policy_answer_fn answer,
                        void *ctx, struct strbuf *err);

#endif
