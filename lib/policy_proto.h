/*
 * policy_proto - Postfix's SMTP access policy delegation protocol (Postfix's
 * SMTPD_POLICY_README), both ends: smtpd's check_policy_service client and
 * the built-in greylisting service (policyd), which Postfix can use too.
 *
 * A request is "name=value" lines ended by an empty line; the reply is
 * "action=..." (and possibly other name=value lines) ended by an empty line.
 * Names are [a-z0-9_]; values may not contain LF (or CR); at most
 * POLICY_MAX_ATTRS attributes and POLICY_MAX_LINE bytes per line.
 *
 *   request=smtpd_access_policy  protocol_state=RCPT  protocol_name=ESMTP
 *   client_address=1.2.3.4  client_name=...  reverse_client_name=...
 *   helo_name=...  sender=...  recipient=...  recipient_count=0
 *   queue_id=...  instance=...  size=...  sasl_method=...  sasl_username=...
 *   ccert_subject= ... encryption_protocol=... encryption_cipher=...
 *   server_address=... server_port=...
 *
 * The reader is incremental: feed it bytes as they come, it says when a
 * whole block (request or reply) is there. Everything is hostile input: a
 * line is refused as soon as it is longer than POLICY_MAX_LINE, even before
 * its LF; a NUL or CR inside a line is refused (one CR right before the LF is
 * dropped, for peers that write CRLF). A lone empty line is a complete block
 * with no attributes: the caller decides what that means. When the same name
 * comes twice, policy_block_get sees the first.
 *
 * A zero-initialized policy_block is empty; policy_block_free empties it.
 */
#ifndef POSTERN_POLICY_PROTO_H
#define POSTERN_POLICY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include "strbuf.h"

#define POLICY_MAX_ATTRS    64
#define POLICY_MAX_LINE     4096

struct policy_attr { char *name, *value; };

struct policy_block {
    struct policy_attr attrs[POLICY_MAX_ATTRS];
    size_t  count;
};

struct policy_reader {
    struct strbuf line;                 /* partial line */
    struct policy_block block;          /* attributes so far */
};

void policy_reader_init(struct policy_reader *rd);
void policy_reader_free(struct policy_reader *rd);
/*
 * policy_reader_feed - consume data[0..len), stopping after a complete block:
 * returns the number of bytes consumed; *done set when rd->block is complete
 * (take it with policy_reader_take, then feed the rest). -1 with err for a line
 * too long, a line without "=", a bad name, too many attributes, a NUL or CR;
 * the reader is then empty again (the caller should drop the peer: the stream
 * has lost its synchronization).
 */
long policy_reader_feed(struct policy_reader *rd, const char *data, size_t len, bool *done,
                        struct strbuf *err);
/* policy_reader_take - move the complete block into out (the reader starts afresh) */
void policy_reader_take(struct policy_reader *rd, struct policy_block *out);
void policy_block_free(struct policy_block *b);
/* policy_block_get - the value of name, or NULL */
const char *policy_block_get(const struct policy_block *b, const char *name);
/*
 * policy_block_add - append name=value (copied); -1 if full, value has CR/LF,
 * name is not [a-z0-9_]+ or the line would exceed POLICY_MAX_LINE (it is then dropped)
 */
int  policy_block_add(struct policy_block *b, const char *name, const char *value);
/* policy_block_format - append the block as the protocol writes it, empty line included */
void policy_block_format(const struct policy_block *b, struct strbuf *out);

#endif
