/*
 * ipc - the one record format every pair of Postern daemons speaks.
 *
 * A record is a 4-byte big-endian length N (at most IPC_RECORD_MAX) followed
 * by N bytes of "name=value\n" attributes; the first attribute is always
 * "type=...". Names are [a-z0-9_]+; values may not contain NUL, CR or LF
 * (ipc_put refuses them; the parser rejects them). An open file descriptor
 * can travel with a record (SCM_RIGHTS on a UNIX socket). Receivers validate
 * every record like network input and accept only the types they expect.
 *
 * Conventions: record arguments are output-only (initialized on entry; always
 * safe to ipc_free afterwards); errno after a failure is ETIMEDOUT for a
 * deadline, EPROTO for bad data, 0 for a clean close between records. After
 * each ipc_reader_fill, call ipc_reader_next until it returns 0.
 */
#ifndef POSTERN_IPC_H
#define POSTERN_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include "strbuf.h"

#define IPC_RECORD_MAX (1024 * 1024)

struct ipc_record {
    struct strbuf data;                 /* the attribute lines, without the length prefix */
};

void ipc_init(struct ipc_record *r, const char *type);   /* empty record of a type */
void ipc_free(struct ipc_record *r);
/* ipc_put - append name=value; -1 if the value holds NUL/CR/LF or the record would be too big */
int  ipc_put(struct ipc_record *r, const char *name, const char *value);
int  ipc_put_int(struct ipc_record *r, const char *name, long long value);
const char *ipc_type(const struct ipc_record *r);         /* "" if none */
/* ipc_get - the value of the first attribute called name, copied into out; false if absent */
bool ipc_get(const struct ipc_record *r, const char *name, struct strbuf *out);
bool ipc_get_int(const struct ipc_record *r, const char *name, long long min, long long max, long long *out);
/* ipc_next - iterate attributes in order; *pos starts at 0; false at the end */
bool ipc_next(const struct ipc_record *r, size_t *pos, struct strbuf *name, struct strbuf *value);
/* ipc_parse - validate raw attribute bytes into r; -1 with err */
int  ipc_parse(struct ipc_record *r, const void *data, size_t len, struct strbuf *err);

/* Blocking I/O with a deadline, for request/reply clients. pass_fd -1: none. */
int  ipc_send(int sock, const struct ipc_record *r, int pass_fd, int timeout_ms, struct strbuf *err);
/* ipc_recv - one record; *recv_fd gets a passed descriptor or -1 (recv_fd may be NULL: any passed fd is closed) */
int  ipc_recv(int sock, struct ipc_record *r, int *recv_fd, int timeout_ms, struct strbuf *err);
/* ipc_connect - connect to a UNIX socket path (relative to the cwd, i.e. the queue directory) */
int  ipc_connect(const char *path, int timeout_ms, struct strbuf *err);

/*
 * Non-blocking reading for event loops: feed the reader whenever the socket
 * is readable; it hands out whole records (with any passed fd) one by one.
 */
struct ipc_reader {
    struct strbuf buf;
    int     fds[8];
    int     nfds;
};
void ipc_reader_init(struct ipc_reader *rd);
void ipc_reader_free(struct ipc_reader *rd);   /* closes fds not handed out */
/* ipc_reader_fill - read what is available: 1 data read, 0 EOF, -1 error (EAGAIN is 1 with nothing read) */
int  ipc_reader_fill(struct ipc_reader *rd, int sock, struct strbuf *err);
/* ipc_reader_next - 1: a record (and its fd or -1) taken; 0: need more; -1: bad data (drop the peer) */
int  ipc_reader_next(struct ipc_reader *rd, struct ipc_record *r, int *recv_fd, struct strbuf *err);
/* ipc_record_fn - one whole record for a dispatch; fd (or -1) is the handler's to close; nonzero: drop the peer */
typedef int (*ipc_record_fn)(void *ctx, const struct ipc_record *r, int fd);
/*
 * ipc_reader_dispatch - what an event loop calls when sock is readable: fill,
 * then every whole record to handle(ctx, ...). 1: keep the connection; 0: the
 * peer closed it between records; -1: drop it, with the reason in err (a read
 * error, bad data, a close in the middle of a record), or err empty when the
 * handler asked (it has said why). errno tells a read error from bad data (EPROTO).
 */
int  ipc_reader_dispatch(struct ipc_reader *rd, int sock, ipc_record_fn handle, void *ctx, struct strbuf *err);
/* ipc_encode - length prefix + attributes, for writing into a libevent buffer */
void ipc_encode(const struct ipc_record *r, struct strbuf *out);

#endif
