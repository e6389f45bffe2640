/*
 * fuzz_policy_proto - lib/policy_proto.c: Postfix's policy delegation protocol
 * (name=value lines, a blank line ends a request), fed in two pieces so that
 * partial lines are exercised, and each complete block formatted back.
 */
#include <stdbool.h>

#include "fuzz_util.h"
#include "policy_proto.h"

/* feed_all - every byte of data through the reader; -1 when the stream is refused */
static int feed_all(struct policy_reader *rd, const char *data, size_t len)
{
    struct strbuf err;
    struct policy_block b;
    struct strbuf out;
    int     rc = 0;

    sb_init(&err);
    while (len > 0) {
        bool    done = false;
        long    used = policy_reader_feed(rd, data, len, &done, &err);

        if (used < 0) {
            rc = -1;
            break;
        }
        if ((size_t) used > len || (used == 0 && !done))
            abort();
        data += used;
        len -= (size_t) used;
        if (done) {
            memset(&b, 0, sizeof(b));
            policy_reader_take(rd, &b);
            (void) policy_block_get(&b, "request");
            sb_init(&out);
            policy_block_format(&b, &out);
            sb_free(&out);
            policy_block_free(&b);
        }
    }
    sb_free(&err);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct policy_reader rd;
    size_t  cut = size ? data[0] % (size + 1) : 0;

    policy_reader_init(&rd);
    if (feed_all(&rd, (const char *) data, cut) == 0)
        feed_all(&rd, (const char *) data + cut, size - cut);
    policy_reader_free(&rd);
    return 0;
}
