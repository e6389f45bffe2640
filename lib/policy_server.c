/*
 * policy_server - the policy protocol's server input loop. See policy_server.h.
 */
#include <event2/buffer.h>

#include "log.h"
#include "policy_server.h"

int policy_serve_input(struct policy_reader *rd, struct bufferevent *bev, policy_answer_fn answer,
                       void *ctx, struct strbuf *err)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    struct strbuf reply = STRBUF_INIT, why = STRBUF_INIT;
    int     rc = 0;

    while (rc == 0 && evbuffer_get_length(in) > 0) {
        size_t  n = (size_t) evbuffer_get_contiguous_space(in);
        const char *data = (const char *) evbuffer_pullup(in, (ssize_t) n);
        bool    done;
        long    used = policy_reader_feed(rd, data, n, &done, &why);

        if (used < 0) {
            sb_printf(err, "protocol error: %s", sb_str(&why));
            rc = -1;
            break;
        }
        evbuffer_drain(in, (size_t) used);
        if (done) {
            struct policy_block req = { 0 };

            policy_reader_take(rd, &req);
            sb_reset(&reply);
            answer(ctx, &req, &reply);
            policy_block_free(&req);
            if (bufferevent_write(bev, sb_str(&reply), sb_len(&reply)) != 0)
                msg_fatal("bufferevent_write: out of memory");
        }
        /* A client that never reads its replies would have us buffer them without end. */
        if (evbuffer_get_length(bufferevent_get_output(bev)) > POLICY_MAX_UNREAD) {
            sb_puts(err, "not reading its replies");
            rc = -1;
        }
    }
    sb_free(&reply);
    sb_free(&why);
    return rc;
}
