/*
 * dsn - compose RFC 3464 delivery status notifications. See dsn.h.
 *
 * The layout follows what Postfix's bounce daemon sends, so that people and
 * programs that know those messages know ours: the same subjects, the same
 * opening of the human-readable part, the same field order in the
 * message/delivery-status part, and an X-Postern-Queue-ID field where
 * Postfix has X-Postfix-Queue-ID. Lines end in LF: the queue stores
 * messages that way and the agents convert on the way out.
 *
 * The boundary is made of the queue ID, the time and the host name, as
 * Postfix makes it, so it cannot occur in our own parts. The sender of the
 * original learns its queue ID from the 250 reply, though, and could put
 * the line into the message to break the report's structure: callers pass
 * their own boundary with a random part (r->boundary) for real reports.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "dsn.h"
#include "strbuf.h"

/* put_value - a hostile value into out: no control characters, at most DSN_VALUE_MAX bytes */
static void put_value(struct strbuf *out, const char *value)
{
    size_t  n = 0;

    for (const unsigned char *p = (const unsigned char *) (value ? value : ""); *p && n < DSN_VALUE_MAX; p++, n++)
        sb_putc(out, (*p < 0x20 || *p == 0x7f) ? '?' : *p);
}

/* eight_bit_value - does a value carry bytes beyond ASCII */
static bool eight_bit_value(const char *value)
{
    for (const unsigned char *p = (const unsigned char *) (value ? value : ""); *p; p++)
        if (*p >= 0x80)
            return true;
    return false;
}

/* report_eight_bit - any 8-bit byte in what we write ourselves */
static bool report_eight_bit(const struct dsn_report *r)
{
    if (eight_bit_value(r->sender) || eight_bit_value(r->to) || eight_bit_value(r->envid))
        return true;
    for (size_t i = 0; i < r->nrcpt; i++)
        if (eight_bit_value(r->rcpts[i].address) || eight_bit_value(r->rcpts[i].orcpt)
            || eight_bit_value(r->rcpts[i].text) || eight_bit_value(r->rcpts[i].relay))
            return true;
    return false;
}

/* dsn_format_date - RFC 5322 date in local time, English names whatever the locale */
void dsn_format_date(int64_t when, char buf[64])
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t  t = (time_t) when;
    struct tm tm;
    long    off;

    if (localtime_r(&t, &tm) == NULL) {
        snprintf(buf, 64, "Thu, 1 Jan 1970 00:00:00 +0000");
        return;
    }
    off = tm.tm_gmtoff / 60;
    snprintf(buf, 64, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld", days[tm.tm_wday % 7], tm.tm_mday,
             months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
             off < 0 ? '-' : '+', (off < 0 ? -off : off) / 60, (off < 0 ? -off : off) % 60);
}

/* boundary - the MIME boundary of this report */
static void boundary(const struct dsn_report *r, struct strbuf *out)
{
    if (r->boundary != NULL) {
        put_value(out, r->boundary);
        return;
    }
    sb_printf(out, "%s.%lld/", r->queue_id, (long long) r->now);
    put_value(out, r->myhostname);
}

/* subject - the Subject: Postfix uses for each kind */
static const char *subject(const struct dsn_report *r)
{
    if (r->postmaster_copy)
        return r->kind == DSN_DELAY ? "Postmaster Warning: Delayed Mail" : "Postmaster Copy: Undelivered Mail";
    switch (r->kind) {
    case DSN_DELAY:
        return "Delayed Mail (still being retried)";
    case DSN_SUCCESS:
        return "Successful Mail Delivery Report";
    case DSN_FAILURE:
    default:
        return "Undelivered Mail Returned to Sender";
    }
}

/* duration - "4 hour(s)": the largest unit that divides the time evenly */
static void duration(struct strbuf *out, long long secs)
{
    if (secs >= 86400 && secs % 86400 == 0)
        sb_printf(out, "%lld day(s)", secs / 86400);
    else if (secs >= 3600 && secs % 3600 == 0)
        sb_printf(out, "%lld hour(s)", secs / 3600);
    else if (secs >= 60 && secs % 60 == 0)
        sb_printf(out, "%lld minute(s)", secs / 60);
    else
        sb_printf(out, "%lld second(s)", secs);
}

/* human_intro - the explanation at the top of the first part */
static void human_intro(const struct dsn_report *r, struct strbuf *out)
{
    sb_puts(out, "This is the mail system at host ");
    put_value(out, r->myhostname);
    sb_puts(out, ".\n\n");
    if (r->postmaster_copy && (r->sender == NULL || *r->sender == '\0')) {
        sb_puts(out, "The attached message has the null sender: it is itself a delivery\n"
                "notification, so its failure cannot be reported to a sender. It could\n"
                "not be delivered to one or more recipients, listed below.\n\n");
        return;
    }
    if (r->postmaster_copy) {
        /* No boiler-plate for the postmaster (as Postfix): whose mail, what happened. */
        sb_puts(out, "Postmaster copy: a message from <");
        put_value(out, r->sender);
        if (r->kind == DSN_DELAY) {
            sb_puts(out, ">\ncould not be delivered for more than ");
            duration(out, r->delayed_for);
            sb_puts(out, "; it will be retried until it is ");
            duration(out, r->lifetime);
            sb_puts(out, " old.\n");
        } else {
            sb_puts(out, ">\ncould not be delivered to one or more recipients, listed below.\n");
        }
        sb_puts(out, "Its headers are attached.\n\n");
        return;
    }
    switch (r->kind) {
    case DSN_DELAY:
        sb_puts(out, "####################################################################\n"
                "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"
                "####################################################################\n\n"
                "Your message could not be delivered for more than ");
        duration(out, r->delayed_for);
        sb_puts(out, ".\nIt will be retried until it is ");
        duration(out, r->lifetime);
        sb_puts(out, " old.\n\n");
        break;
    case DSN_SUCCESS:
        sb_puts(out, "Your message was successfully delivered to the destination(s)\n"
                "listed below. If the message was delivered to mailbox you will\n"
                "receive no further notifications. Otherwise you may still receive\n"
                "notifications of mail delivery errors from other systems.\n\n"
                "                   The mail system\n\n");
        return;
    case DSN_FAILURE:
    default:
        sb_puts(out, "I'm sorry to have to inform you that your message could not\n"
                "be delivered to one or more recipients. It's attached below.\n\n");
        break;
    }
    sb_puts(out, "For further assistance, please send mail to postmaster.\n\n"
            "If you do so, please include this problem report. You can\n"
            "delete your own text from the attached returned message.\n\n"
            "                   The mail system\n\n");
}

/* orcpt_address - the address part of "type;address" */
static const char *orcpt_address(const char *orcpt)
{
    const char *semi = orcpt ? strchr(orcpt, ';') : NULL;

    return semi ? semi + 1 : orcpt;
}

/*
 * put_wrapped - text as lines of about HUMAN_WIDTH columns, broken at spaces
 * (continuations indented), and never longer than DSN_VALUE_MAX: a hostile
 * word without spaces is cut there.
 */
#define HUMAN_WIDTH 78
static void put_wrapped(struct strbuf *out, const char *text)
{
    size_t  col = 0;

    while (*text) {
        size_t  word = strcspn(text, " ");

        if (col > 0 && col + 1 + word > HUMAN_WIDTH) {
            sb_puts(out, "\n    ");
            col = 4;
        } else if (col > 0) {
            sb_putc(out, ' ');
            col++;
        }
        for (size_t k = 0; k < word; k++, col++) {
            if (col >= DSN_VALUE_MAX) {
                sb_puts(out, "\n    ");
                col = 4;
            }
            sb_putc(out, text[k]);
        }
        text += word;
        text += strspn(text, " ");
    }
    sb_putc(out, '\n');
}

/* human_rcpt - "<addr> (expanded from <orig>): text", wrapped */
static void human_rcpt(const struct dsn_rcpt *rc, struct strbuf *out)
{
    struct strbuf line = STRBUF_INIT;
    const char *orig = orcpt_address(rc->orcpt);

    sb_putc(&line, '<');
    put_value(&line, rc->address);
    sb_putc(&line, '>');
    if (orig && *orig && strcasecmp(orig, rc->address) != 0) {
        sb_puts(&line, " (expanded from <");
        put_value(&line, orig);
        sb_puts(&line, ">)");
    }
    sb_puts(&line, ": ");
    put_value(&line, rc->text && *rc->text ? rc->text : rc->action);
    put_wrapped(out, sb_str(&line));
    sb_putc(out, '\n');
    sb_free(&line);
}

/* remote_host - "mx.example" of a relay "mx.example[192.0.2.1]:25"; NULL for a local agent */
static bool remote_host(const char *relay, struct strbuf *host)
{
    const char *br = relay ? strchr(relay, '[') : NULL;

    if (br == NULL || br == relay)
        return false;
    sb_append(host, relay, (size_t) (br - relay));
    return true;
}

/* remote_host_in_text - "H" of a reason "host H[addr] said: ..." (the agent did not name a relay) */
static bool remote_host_in_text(const char *text, struct strbuf *host)
{
    size_t  len;

    if (text == NULL || strncmp(text, "host ", 5) != 0)
        return false;
    text += 5;
    len = strcspn(text, "[ ");
    if (len == 0 || text[len] != '[')
        return false;
    sb_append(host, text, len);
    return true;
}

/*
 * smtp_diagnostic - the remote reply in "host H said: 550 5.1.1 text (in
 * reply to RCPT TO command)", as the smtp agent words it; NULL if not one.
 */
static const char *smtp_diagnostic(const char *text, size_t *len)
{
    const char *said = text ? strstr(text, " said: ") : NULL;
    const char *reply, *tail;

    if (said == NULL || strncmp(text, "host ", 5) != 0)
        return NULL;
    reply = said + 7;
    if (!(reply[0] >= '2' && reply[0] <= '5' && reply[1] >= '0' && reply[1] <= '9' && reply[2] >= '0'
          && reply[2] <= '9'))
        return NULL;
    tail = strstr(reply, " (in reply to ");
    *len = tail ? (size_t) (tail - reply) : strlen(reply);
    return reply;
}

/* status_rcpt - one recipient's block in the message/delivery-status part */
static void status_rcpt(const struct dsn_report *r, const struct dsn_rcpt *rc, struct strbuf *out)
{
    struct strbuf host = STRBUF_INIT, tmp = STRBUF_INIT;
    const char *type = eight_bit_value(rc->address) ? "utf-8" : "rfc822";
    const char *diag;
    char    date[64];
    size_t  len = 0;

    sb_printf(out, "\nFinal-Recipient: %s; ", type);
    put_value(out, rc->address);
    sb_putc(out, '\n');
    if (rc->orcpt && strchr(rc->orcpt, ';') != NULL) {
        sb_puts(out, "Original-Recipient: ");
        put_value(out, rc->orcpt);
        sb_putc(out, '\n');
    }
    sb_printf(out, "Action: %s\n", rc->action);
    sb_puts(out, "Status: ");
    put_value(out, rc->status);
    sb_putc(out, '\n');
    if (remote_host(rc->relay, &host) || remote_host_in_text(rc->text, &host)) {
        sb_puts(out, "Remote-MTA: dns; ");
        put_value(out, sb_str(&host));
        sb_putc(out, '\n');
    }
    if ((diag = smtp_diagnostic(rc->text, &len)) != NULL) {
        sb_append(&tmp, diag, len);
        sb_puts(out, "Diagnostic-Code: smtp; ");
        put_value(out, sb_str(&tmp));
        sb_putc(out, '\n');
    } else if (rc->text && *rc->text && r->kind != DSN_SUCCESS) {
        sb_puts(out, "Diagnostic-Code: X-Postern; ");
        put_value(out, rc->text);
        sb_putc(out, '\n');
    }
    if (rc->last_attempt > 0) {
        dsn_format_date(rc->last_attempt, date);
        sb_printf(out, "Last-Attempt-Date: %s\n", date);
    }
    if (r->kind == DSN_DELAY && r->will_retry_until > 0) {
        dsn_format_date(r->will_retry_until, date);
        sb_printf(out, "Will-Retry-Until: %s\n", date);
    }
    sb_free(&host);
    sb_free(&tmp);
}

/* third_part_name - Content-Description of the returned message */
static const char *third_part_name(const struct dsn_report *r)
{
    switch (r->kind) {
    case DSN_DELAY:
        return r->full ? "Delayed Message" : "Delayed Message Headers";
    case DSN_SUCCESS:
        return r->full ? "Delivered Message" : "Message Headers";
    case DSN_FAILURE:
    default:
        return r->full ? "Undelivered Message" : "Undelivered Message Headers";
    }
}

/* dsn_compose_head - headers, the text part, the status part, the third part's header */
bool dsn_compose_head(const struct dsn_report *r, struct strbuf *out)
{
    struct strbuf b = STRBUF_INIT;
    bool    eight = report_eight_bit(r) || (r->full && r->eight_bit) || r->smtputf8;
    const char *third_type = r->smtputf8 ? (r->full ? "message/global" : "message/global-headers")
        : (r->full ? "message/rfc822" : "text/rfc822-headers");
    char    date[64];

    boundary(r, &b);
    dsn_format_date(r->now, date);
    sb_printf(out, "Date: %s\n", date);
    sb_puts(out, "From: MAILER-DAEMON@");
    put_value(out, r->myhostname);
    sb_puts(out, " (Mail Delivery System)\n");
    sb_printf(out, "Subject: %s\n", subject(r));
    sb_puts(out, "To: <");
    put_value(out, r->to);
    sb_puts(out, ">\n");
    sb_puts(out, "Auto-Submitted: auto-replied\n");
    sb_puts(out, "MIME-Version: 1.0\n");
    sb_printf(out, "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"%s\"\n", sb_str(&b));
    if (eight)
        sb_puts(out, "Content-Transfer-Encoding: 8bit\n");
    sb_printf(out, "Message-Id: <%lld.%s@", (long long) r->now, r->queue_id);
    put_value(out, r->myhostname);
    sb_puts(out, ">\n\nThis is a MIME-encapsulated message.\n\n");

    /* 1: for people */
    sb_printf(out, "--%s\nContent-Description: Notification\nContent-Type: text/plain; charset=%s\n\n",
              sb_str(&b), eight ? "utf-8" : "us-ascii");
    human_intro(r, out);
    for (size_t i = 0; i < r->nrcpt; i++)
        human_rcpt(&r->rcpts[i], out);

    /* 2: for programs */
    sb_printf(out, "--%s\nContent-Description: Delivery report\nContent-Type: message/%s\n\n", sb_str(&b),
              eight ? "global-delivery-status" : "delivery-status");
    sb_puts(out, "Reporting-MTA: dns; ");
    put_value(out, r->myhostname);
    sb_printf(out, "\nX-Postern-Queue-ID: %s\n", r->queue_id);
    sb_puts(out, "X-Postern-Sender: rfc822; ");
    put_value(out, r->sender);
    sb_putc(out, '\n');
    if (r->envid && *r->envid) {
        sb_puts(out, "Original-Envelope-Id: ");
        put_value(out, r->envid);
        sb_putc(out, '\n');
    }
    dsn_format_date(r->arrival, date);
    sb_printf(out, "Arrival-Date: %s\n", date);
    for (size_t i = 0; i < r->nrcpt; i++)
        status_rcpt(r, &r->rcpts[i], out);

    /* 3: what was sent */
    /* RFC 6533: an SMTPUTF8 original travels as message/global(-headers). */
    sb_printf(out, "\n--%s\nContent-Description: %s\nContent-Type: %s\n", sb_str(&b), third_part_name(r),
              third_type);
    if (r->full && (r->eight_bit || r->smtputf8))
        sb_puts(out, "Content-Transfer-Encoding: 8bit\n");
    sb_putc(out, '\n');
    sb_free(&b);
    return eight;
}

/* dsn_compose_tail - the closing delimiter (on a line of its own, whatever came before) */
void dsn_compose_tail(const struct dsn_report *r, struct strbuf *out)
{
    struct strbuf b = STRBUF_INIT;

    boundary(r, &b);
    sb_printf(out, "\n--%s--\n", sb_str(&b));
    sb_free(&b);
}

/* dsn_notify_wants - RFC 3461: absent NOTIFY means FAILURE,DELAY; NEVER means nothing */
bool dsn_notify_wants(const char *notify, enum dsn_kind kind)
{
    const char *word = kind == DSN_FAILURE ? "FAILURE" : kind == DSN_DELAY ? "DELAY" : "SUCCESS";
    size_t  wlen = strlen(word);

    if (notify == NULL || *notify == '\0')
        return kind != DSN_SUCCESS;
    for (const char *p = notify; *p;) {
        size_t  len = strcspn(p, ",");

        if (len == wlen && strncasecmp(p, word, len) == 0)
            return true;
        p += len;
        if (*p == ',')
            p++;
    }
    return false;
}

/* dsn_split_reason - "5.1.1 unknown user" -> "5.1.1" and "unknown user" */
const char *dsn_split_reason(const char *reason, char status[DSN_STATUS_MAX])
{
    size_t  n = strspn(reason, "0123456789.");

    status[0] = '\0';
    if (n >= 5 && n < DSN_STATUS_MAX && (reason[0] >= '2' && reason[0] <= '5') && reason[1] == '.'
        && (reason[n] == ' ' || reason[n] == '\0')) {
        memcpy(status, reason, n);
        status[n] = '\0';
        reason += n;
        reason += strspn(reason, " ");
    }
    return reason;
}

/* dsn_header_length - up to the empty line that ends the header section (LF or CRLF lines) */
size_t dsn_header_length(const char *data, size_t len, bool *complete)
{
    size_t  line = 0;

    *complete = false;
    for (size_t i = 0; i < len; i++) {
        if (data[i] != '\n')
            continue;
        /* An empty line, or one holding only a CR, ends the headers. */
        if (i == line || (i == line + 1 && data[line] == '\r')) {
            *complete = true;
            return line;
        }
        line = i + 1;
    }
    return len;
}
