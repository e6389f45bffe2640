/*
 * fuzz_mime - lib/mime.c, mime_decode.c, mime_imap.c: a message as imapd and
 * the DSN code read it: the part tree, ENVELOPE and BODYSTRUCTURE of every
 * part, BODY[section] for a few sections, header fields, RFC 2047 words,
 * transfer decoding and dates.
 */
#include <stdbool.h>
#include <time.h>

#include "fuzz_util.h"
#include "mime.h"

static const char *const sections[] = {
    "", "HEADER", "TEXT", "1", "1.MIME", "2.1", "1.2.HEADER", "2.TEXT", "3.2.1.MIME",
    "HEADER.FIELDS (From To Subject)", "1.HEADER.FIELDS.NOT (Received)",
};

/* field - every header field: decode its words, and a date if it is one */
static bool field(const char *name, const char *value, void *ctx)
{
    struct strbuf out;
    time_t  t;

    (void) name;
    (void) ctx;
    sb_init(&out);
    mime_decode_2047(value, strlen(value), &out);
    (void) mime_parse_date(value, &t);
    sb_free(&out);
    return true;
}

/* visit - one part and its children */
static void visit(const struct mime_message *msg, const struct mime_part *part, unsigned depth)
{
    struct strbuf out;

    if (depth > MIME_MAX_DEPTH + 2 || part->hdr_off > part->body_off || part->body_off > part->end_off
        || part->end_off > msg->len)
        abort();                        /* offsets must stay inside the message */
    sb_init(&out);
    mime_bodystructure(msg, part, true, &out);
    mime_bodystructure(msg, part, false, &out);
    if (part->is_message && part->nchildren > 0)
        mime_envelope(msg, &part->children[0], &out);
    mime_decode_body(msg, part, &out);
    mime_header_foreach(msg->data + part->hdr_off, part->body_off - part->hdr_off, field, NULL);
    sb_free(&out);
    for (size_t i = 0; i < part->nchildren; i++)
        visit(msg, &part->children[i], depth + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char   *text = fuzz_cstring(data, size);
    struct mime_message *msg = mime_parse(text, size);
    struct strbuf out, err;

    if (msg != NULL) {
        sb_init(&out);
        sb_init(&err);
        mime_envelope(msg, &msg->root, &out);
        for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
            sb_reset(&out);
            (void) mime_section(msg, sections[i], &out, &err);
        }
        (void) mime_header_get(text, msg->root.body_off, "Subject", &out);
        sb_free(&out);
        sb_free(&err);
        visit(msg, &msg->root, 0);
        mime_free(msg);
    }
    (void) mime_crlf_size(text, size);
    free(text);
    return 0;
}
