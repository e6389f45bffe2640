/*
 * smtpd_header_checks - Postfix's header_checks, mime_header_checks and
 * nested_header_checks (header_checks(5)), applied to a received message
 * before it is committed.
 *
 * Interface (smtpd.h): smtpd_hc_init(), smtpd_hc_start(), smtpd_hc_run(),
 * smtpd_hc_result_free(), smtpd_hc_free().
 *
 * Every logical header line ("Name: value", unfolded) is looked up in one of
 * the three map lists, as Postfix's cleanup does: MIME headers
 * (Content-Type, -Disposition, -Description, -ID, -Transfer-Encoding,
 * MIME-Version) of the message and of every MIME part in mime_header_checks;
 * other headers of the message in header_checks; other headers of a message
 * attached as message/rfc822 in nested_header_checks. The parts come from
 * lib/mime (bounded depth and part count; a message beyond its limits,
 * whose further parts would go unchecked, is refused with 550 5.6.0).
 *
 * The first action that ends the message (REJECT, DISCARD) stops the walk;
 * HOLD (the message is committed into hold/, where qmgr never looks, until
 * "postctl queue release"), WARN and INFO log and go on; OK and DUNNO do
 * nothing (OK is DUNNO in header checks, as in Postfix). Other Postfix
 * actions (IGNORE, PREPEND, REDIRECT, FILTER, ...) are not implemented: a
 * table that lists one is a configuration error at start (with the file and
 * line), and one that a table answers anyway (a type that cannot list its
 * values) is logged and ignored.
 *
 * smtpd_hc_run() runs in a commit thread on the message read back from the
 * queue file, so long regexp work never stalls the event loop. The maps are
 * not thread-safe: one mutex serializes every use of them, including the
 * event loop's once-a-second look for a replaced table (which only tries
 * the lock, so the loop never waits for a long check). A table replaced
 * beyond reach (chroot) has the process retire, so that the next
 * connection gets a fresh process with the new table. Log lines are
 * collected and written by the event loop (the logger is not thread-safe).
 *
 * With no checks configured smtpd_hc_init() returns NULL and the data path
 * does nothing extra.
 *
 * Diagnostics: "ID: reject: header NAME: VALUE from CLIENT; from=<S> to=<R>:
 * 5.7.1 TEXT", likewise "warning:", "info:", "hold:" and "discard:".
 */
#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "map.h"
#include "mem.h"
#include "mime.h"
#include "service.h"
#include "strbuf.h"

#include "smtpd.h"

#define HC_TEXT_MAX     512             /* reply and log text taken from a table */
#define HC_LOG_VALUE    256             /* header value shown in a log line */

/* Which list a header goes to; HC_NONE: none (non-MIME headers of a multipart's parts). */
enum hc_class { HC_PRIMARY, HC_MIME, HC_NESTED, HC_NONE };

struct smtpd_hc {
    struct maplist *lists[HC_NONE];     /* by enum hc_class; NULL: not configured */
    struct service *svc;
    pthread_mutex_t lock;
    struct event *timer;
};

/* One walk over a message. */
struct hc_walk {
    struct smtpd_hc *hc;
    const struct smtpd_hc_context *ctx;
    struct smtpd_hc_result *res;
    enum hc_class nonmime;              /* class of the non-MIME headers of this header block */
    struct strbuf key, value;
    size_t  parts;                      /* parts walked so far */
};

static const char *const mime_headers[] = {
    "content-type", "content-disposition", "content-description", "content-id",
    "content-transfer-encoding", "mime-version", NULL,
};

/* is_mime_header - Postfix's MIME header names */
static bool is_mime_header(const char *name)
{
    for (size_t i = 0; mime_headers[i]; i++)
        if (strcasecmp(name, mime_headers[i]) == 0)
            return true;
    return false;
}

/* action_word - the first word of a table's answer: its length; *rest the text after it */
static size_t action_word(const char *value, const char **rest)
{
    size_t  n = 0;

    while (value[n] && !isspace((unsigned char) value[n]))
        n++;
    *rest = value + n;
    while (isspace((unsigned char) **rest))
        (*rest)++;
    return n;
}

/* known_action - actions this module carries out */
static bool known_action(const char *word, size_t n)
{
    static const char *const known[] = {"REJECT", "WARN", "INFO", "DISCARD", "HOLD", "DUNNO", "OK",
                                        NULL};

    for (size_t i = 0; known[i]; i++)
        if (strlen(known[i]) == n && strncasecmp(word, known[i], n) == 0)
            return true;
    return false;
}

/* validate_one - maplist_foreach_value callback: an action we do not implement is fatal */
static int validate_one(void *arg, const char *spec, const char *value, int line)
{
    const char *param = arg;
    const char *rest;
    size_t  n = action_word(value, &rest);

    if (known_action(value, n))
        return 0;
    msg_fatal("%s: %s:%d: unsupported header check action '%.*s' (supported: REJECT, WARN, "
              "INFO, DISCARD, HOLD, DUNNO, OK)", param, spec, line, (int) (n > 64 ? 64 : n), value);
    return 1;
}

/* smtpd_hc_init - the three lists; NULL when none is configured; fatal on errors */
struct smtpd_hc *smtpd_hc_init(struct service *svc)
{
    static const char *const params[] = {"header_checks", "mime_header_checks",
                                         "nested_header_checks"};
    struct smtpd_hc *hc = xcalloc(1, sizeof(*hc));
    struct strbuf err = STRBUF_INIT;
    bool    any = false;

    for (int i = 0; i < HC_NONE; i++) {
        const char *value = config_str(svc->cfg, params[i]);

        if ((hc->lists[i] = maplist_open(value, &err)) == NULL)
            msg_fatal("%s: %s", params[i], sb_str(&err));
        if (maplist_empty(hc->lists[i])) {
            maplist_close(hc->lists[i]);
            hc->lists[i] = NULL;
            continue;
        }
        maplist_foreach_value(hc->lists[i], validate_one, (void *) params[i]);
        any = true;
    }
    sb_free(&err);
    if (!any) {
        free(hc);
        return NULL;
    }
    hc->svc = svc;
    pthread_mutex_init(&hc->lock, NULL);
    return hc;
}

/* smtpd_hc_free - at exit, once no commit is under way: close the tables */
void smtpd_hc_free(struct smtpd_hc *hc)
{
    if (hc == NULL)
        return;
    if (hc->timer != NULL)
        event_free(hc->timer);
    for (int i = 0; i < HC_NONE; i++)
        maplist_close(hc->lists[i]);
    pthread_mutex_destroy(&hc->lock);
    free(hc);
}

/* hc_changed - under the lock: a table was replaced beyond reach */
static bool hc_changed(struct smtpd_hc *hc)
{
    bool    changed = false;

    for (int i = 0; i < HC_NONE; i++)
        if (hc->lists[i] != NULL && maplist_changed(hc->lists[i]))
            changed = true;
    return changed;
}

/* hc_tick - the event loop's look for replaced tables; never waits for the lock */
static void hc_tick(evutil_socket_t fd, short what, void *arg)
{
    struct smtpd_hc *hc = arg;
    bool    changed;

    (void) fd;
    (void) what;
    if (pthread_mutex_trylock(&hc->lock) != 0)
        return;
    changed = hc_changed(hc);
    pthread_mutex_unlock(&hc->lock);
    if (changed)
        service_retire(hc->svc, "a header_checks table changed and cannot be reopened here; "
                       "a fresh process will open it");
}

/* smtpd_hc_start - in the event loop, after the privilege drop: watch the tables */
void smtpd_hc_start(struct smtpd_hc *hc, struct event_base *base)
{
    struct timeval tv = {1, 0};

    if (hc == NULL)
        return;
    hc->timer = event_new(base, -1, EV_PERSIST, hc_tick, hc);
    if (hc->timer == NULL || event_add(hc->timer, &tv) != 0)
        msg_fatal("header checks: cannot start the table timer: out of memory");
}

/* log_value - a header value for a log line: bounded, no control characters */
static void log_value(struct strbuf *out, const char *text)
{
    size_t  n = 0;

    for (; *text && n < HC_LOG_VALUE; text++, n++) {
        unsigned char c = (unsigned char) *text;

        /* The white space of a folded header is kept when it is unfolded. */
        sb_putc(out, c == '\t' ? ' ' : c < 0x20 || c == 0x7f ? '?' : c);
    }
    if (*text)
        sb_puts(out, "...");
}

/* log_line - "ID: what: header NAME: VALUE from CLIENT; from=<S> to=<R>: text" for the loop */
static void log_line(struct hc_walk *w, const char *what, const char *name, const char *value,
                     const char *text)
{
    const struct smtpd_hc_context *ctx = w->ctx;
    struct strbuf *log = &w->res->log;

    sb_printf(log, "%s: %s: header ", ctx->queue_id, what);
    log_value(log, name);
    sb_puts(log, ": ");
    log_value(log, value);
    sb_printf(log, " from %s; from=<", ctx->client);
    log_value(log, ctx->sender);
    sb_puts(log, "> to=<");
    log_value(log, ctx->rcpt);
    sb_puts(log, ">");
    if (*text) {
        sb_puts(log, ": ");
        log_value(log, text);
    }
    sb_putc(log, '\n');
}

/* reply_text - the table's text for the client: printable, bounded; dflt if none */
static void reply_text(struct strbuf *out, const char *text, const char *dflt)
{
    size_t  n = 0;

    sb_reset(out);
    if (*text == '\0')
        text = dflt;
    for (; *text && n < HC_TEXT_MAX; text++, n++) {
        unsigned char c = (unsigned char) *text;

        sb_putc(out, c < 0x20 || c >= 0x7f ? '?' : c);
    }
}

/* apply - what the answer for one header says; false stops the walk */
static bool apply(struct hc_walk *w, const char *name, const char *hvalue, const char *answer)
{
    struct smtpd_hc_result *res = w->res;
    const char *rest;
    size_t  n = action_word(answer, &rest);
    struct strbuf text = STRBUF_INIT;
    bool    go_on = true;

#define IS(word) (n == strlen(word) && strncasecmp(answer, word, n) == 0)
    if (IS("REJECT")) {
        reply_text(&text, rest, "message content rejected");
        /* A table text that brings its own 5.x.x status code keeps it, as Postfix does. */
        if (sb_str(&text)[0] == '5' && sb_str(&text)[1] == '.'
            && isdigit((unsigned char) sb_str(&text)[2]))
            sb_printf(&res->reply, "550 %s", sb_str(&text));
        else
            sb_printf(&res->reply, "550 5.7.1 %s", sb_str(&text));
        log_line(w, "reject", name, hvalue, sb_str(&res->reply) + 4);
        res->action = SMTPD_HC_REJECT;
        go_on = false;
    } else if (IS("DISCARD")) {
        reply_text(&text, rest, "");
        log_line(w, "discard", name, hvalue, sb_str(&text));
        res->action = SMTPD_HC_DISCARD;
        go_on = false;
    } else if (IS("HOLD")) {
        /* Later headers may still reject or discard it, as in Postfix. */
        reply_text(&text, rest, "");
        log_line(w, "hold", name, hvalue, sb_str(&text));
        res->hold = true;
    } else if (IS("WARN")) {
        reply_text(&text, rest, "");
        log_line(w, "warning", name, hvalue, sb_str(&text));
    } else if (IS("INFO")) {
        reply_text(&text, rest, "");
        log_line(w, "info", name, hvalue, sb_str(&text));
    } else if (!IS("DUNNO") && !IS("OK")) {
        reply_text(&text, answer, "");
        sb_printf(&res->log, "%s: warning: header checks: unsupported action '%s' ignored\n",
                  w->ctx->queue_id, sb_str(&text));
    }
#undef IS
    sb_free(&text);
    return go_on;
}

/* check_header - mime_header_foreach callback: look one header up */
static bool check_header(const char *name, const char *value, void *arg)
{
    struct hc_walk *w = arg;
    enum hc_class cls = is_mime_header(name) ? HC_MIME : w->nonmime;
    struct maplist *list;
    enum map_status st;

    if (cls == HC_NONE || (list = w->hc->lists[cls]) == NULL)
        return true;
    sb_reset(&w->key);
    sb_printf(&w->key, "%s: %s", name, value);
    /* A longer header is checked on its start rather than not at all. */
    if (sb_len(&w->key) > MAP_LINE_MAX)
        sb_truncate(&w->key, MAP_LINE_MAX);
    st = maplist_lookup(list, sb_str(&w->key), &w->value);
    if (st == MAP_TEMPFAIL) {
        sb_printf(&w->res->log, "%s: warning: header checks: table lookup failed: %s\n",
                  w->ctx->queue_id, sb_str(&w->value));
        sb_set(&w->res->reply, "451 4.3.0 Error: header check table lookup failed");
        w->res->action = SMTPD_HC_TEMPFAIL;
        return false;
    }
    if (st != MAP_FOUND)
        return true;
    return apply(w, name, value, sb_str(&w->value));
}

/* too_complex - lib/mime stopped parsing here: what lies beyond would go unchecked */
static void too_complex(struct hc_walk *w)
{
    sb_printf(&w->res->log, "%s: reject: MIME structure beyond %d levels or %d parts from %s; "
              "from=<%s> to=<%s>: 5.6.0 message MIME structure too complex to check\n",
              w->ctx->queue_id, MIME_MAX_DEPTH, MIME_MAX_PARTS, w->ctx->client,
              w->ctx->sender, w->ctx->rcpt);
    sb_set(&w->res->reply, "550 5.6.0 message MIME structure too complex to check");
    w->res->action = SMTPD_HC_REJECT;
}

/* walk_part - the header block of part, then its children */
static void walk_part(struct hc_walk *w, const struct mime_message *msg,
                      const struct mime_part *part, enum hc_class nonmime, unsigned depth)
{
    /*
     * Where the parser's limits stop it, an attachment could hide unchecked
     * (a MUA parses on): refuse the message, as Postfix refuses MIME
     * nesting deeper than its limit.
     */
    if (++w->parts >= MIME_MAX_PARTS
        || (depth >= MIME_MAX_DEPTH && (part->is_multipart || part->is_message))) {
        too_complex(w);
        return;
    }
    w->nonmime = nonmime;
    if (part->body_off > part->hdr_off && part->body_off <= msg->len)
        mime_header_foreach(msg->data + part->hdr_off, part->body_off - part->hdr_off,
                            check_header, w);
    for (size_t i = 0; i < part->nchildren && w->res->action == SMTPD_HC_PASS; i++) {
        /* An attached message's own headers are nested; a multipart's parts have MIME ones. */
        walk_part(w, msg, &part->children[i], part->is_message ? HC_NESTED : HC_NONE,
                  depth + 1);
    }
}

/* smtpd_hc_run - in a commit thread: check every header of data[0..len) */
void smtpd_hc_run(struct smtpd_hc *hc, const char *data, size_t len,
                  const struct smtpd_hc_context *ctx, struct smtpd_hc_result *res)
{
    struct hc_walk w = {hc, ctx, res, HC_PRIMARY, STRBUF_INIT, STRBUF_INIT, 0};
    struct mime_message *msg;

    res->action = SMTPD_HC_PASS;
    msg = mime_parse(data, len);
    pthread_mutex_lock(&hc->lock);
    walk_part(&w, msg, &msg->root, HC_PRIMARY, 0);
    res->retire = hc_changed(hc);
    pthread_mutex_unlock(&hc->lock);
    mime_free(msg);
    sb_free(&w.key);
    sb_free(&w.value);
}

/* smtpd_hc_result_free - the strings of a result */
void smtpd_hc_result_free(struct smtpd_hc_result *res)
{
    sb_free(&res->reply);
    sb_free(&res->log);
}
