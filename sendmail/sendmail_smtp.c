/*
 * sendmail_smtp - "sendmail -bs": SMTP on stdin/stdout for local programs.
 *
 * Interface (sendmail.h): smtp_session().
 *
 * A minimal server dialogue: HELO/EHLO, MAIL FROM, RCPT TO, DATA, RSET,
 * NOOP, VRFY (252), QUIT. Each message goes through the same maildrop writer
 * as a command-line submission ("250 2.0.0 Ok: queued as NAME" once the
 * maildrop file is fsynced), so the pickup step applies the same checks.
 * ESMTP parameters after the address are accepted and ignored, as the
 * peer is a local program. Input lines are bounded (SMTP_LINE_MAX): a longer
 * command is refused and skipped to its end, so the dialogue stays in step;
 * message lines are passed on whole, bounded by message_size_limit.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "maildrop.h"
#include "strbuf.h"
#include "strlist.h"

#include "sendmail.h"

#define SMTP_LINE_MAX 2048              /* a command line, CRLF included */

/* reply - one reply line, flushed (the client waits for it) */
static void reply(const char *text)
{
    fputs(text, stdout);
    fputs("\r\n", stdout);
    fflush(stdout);
}

/* read_line - the next line without CR LF; 0: EOF; -1: longer than max (consumed) */
static int read_line(struct strbuf *line, size_t max)
{
    int     c;
    bool    overflow = false;

    sb_reset(line);
    while ((c = getchar()) != EOF && c != '\n') {
        if (sb_len(line) < max)
            sb_putc(line, c);
        else
            overflow = true;
    }
    if (c == EOF && sb_len(line) == 0)
        return 0;
    if (sb_len(line) > 0 && sb_str(line)[sb_len(line) - 1] == '\r')
        sb_truncate(line, sb_len(line) - 1);
    return overflow ? -1 : 1;
}

/* path_arg - the address of "FROM:<addr> params" / "TO:<addr>"; false if malformed */
static bool path_arg(const char *arg, const char *keyword, struct strbuf *addr)
{
    size_t  klen = strlen(keyword);
    const char *p, *gt;

    if (strncasecmp(arg, keyword, klen) != 0)
        return false;
    p = arg + klen;
    while (*p == ' ')
        p++;
    if (*p != '<' || (gt = strchr(p, '>')) == NULL)
        return false;
    sb_reset(addr);
    sb_append(addr, p + 1, (size_t) (gt - p - 1));
    return maildrop_value_valid(sb_str(addr), false);
}

/* read_data - the message up to ".", dot-unstuffed, LF line ends; false: too big (all consumed) */
static bool read_data(const struct sendmail *sm, struct strbuf *msg, bool *eof)
{
    struct strbuf line = STRBUF_INIT;
    bool    fits = true;
    int     rc;

    sb_reset(msg);
    *eof = false;
    for (;;) {
        rc = read_line(&line, sm->size_limit > 0 ? (size_t) sm->size_limit + 2 : (size_t) -1);
        if (rc == 0) {
            *eof = true;
            break;
        }
        if (rc < 0)
            fits = false;
        if (strcmp(sb_str(&line), ".") == 0)
            break;
        if (!fits)
            continue;
        if (sb_str(&line)[0] == '.')
            sb_append(msg, sb_str(&line) + 1, sb_len(&line) - 1);
        else
            sb_append(msg, sb_str(&line), sb_len(&line));
        sb_putc(msg, '\n');
        if (sm->size_limit > 0 && sb_len(msg) > (size_t) sm->size_limit) {
            fits = false;
            sb_reset(msg);
        }
    }
    sb_free(&line);
    return fits;
}

/* smtp_session - serve the dialogue until QUIT or end of input */
int smtp_session(const struct sendmail *sm)
{
    struct strbuf line = STRBUF_INIT, sender = STRBUF_INIT, addr = STRBUF_INIT, msg = STRBUF_INIT;
    struct strbuf text = STRBUF_INIT;
    struct strlist rcpts = STRLIST_INIT;
    bool    have_sender = false, eof = false;
    int     rc;

    sb_printf(&text, "220 %s ESMTP Postern (local)", sm->hostname);
    reply(sb_str(&text));
    while (!eof && (rc = read_line(&line, SMTP_LINE_MAX)) != 0) {
        const char *cmd = sb_str(&line);

        if (rc < 0) {
            reply("500 5.5.0 Error: line too long");
        } else if (strncasecmp(cmd, "EHLO", 4) == 0 && (cmd[4] == ' ' || !cmd[4])) {
            sb_reset(&text);
            sb_printf(&text, "250-%s\r\n250-PIPELINING\r\n250-SIZE %lld\r\n250-8BITMIME\r\n"
                      "250 ENHANCEDSTATUSCODES", sm->hostname, sm->size_limit);
            reply(sb_str(&text));
        } else if (strncasecmp(cmd, "HELO", 4) == 0 && (cmd[4] == ' ' || !cmd[4])) {
            sb_reset(&text);
            sb_printf(&text, "250 %s", sm->hostname);
            reply(sb_str(&text));
        } else if (strncasecmp(cmd, "MAIL ", 5) == 0) {
            if (have_sender)
                reply("503 5.5.1 Error: nested MAIL command");
            else if (!path_arg(cmd + 5, "FROM:", &sender))
                reply("501 5.1.7 Bad sender address syntax");
            else {
                have_sender = true;
                reply("250 2.1.0 Ok");
            }
        } else if (strncasecmp(cmd, "RCPT ", 5) == 0) {
            if (!have_sender)
                reply("503 5.5.1 Error: need MAIL command");
            else if (!path_arg(cmd + 5, "TO:", &addr) || sb_len(&addr) == 0)
                reply("501 5.1.3 Bad recipient address syntax");
            else if (rcpts.count >= MAILDROP_RCPT_MAX)
                reply("452 4.5.3 Error: too many recipients");
            else {
                strlist_add(&rcpts, sb_str(&addr));
                reply("250 2.1.5 Ok");
            }
        } else if (strcasecmp(cmd, "DATA") == 0) {
            char    name[MAILDROP_NAME_LEN + 1];

            if (rcpts.count == 0) {
                reply(have_sender ? "554 5.5.1 Error: no valid recipients" : "503 5.5.1 Error: need RCPT command");
                continue;
            }
            reply("354 End data with <CR><LF>.<CR><LF>");
            if (!read_data(sm, &msg, &eof))
                reply("552 5.3.4 Error: message file too big");
            else if (eof)
                break;                  /* no final dot: nothing was accepted */
            else if (drop_message(sm, sb_str(&sender), NULL, &rcpts, &msg, name, sizeof(name)) != 0)
                reply("451 4.3.0 Error: queue file write error");
            else {
                sb_reset(&text);
                sb_printf(&text, "250 2.0.0 Ok: queued as %s", name);
                reply(sb_str(&text));
            }
            have_sender = false;
            strlist_free(&rcpts);
        } else if (strcasecmp(cmd, "RSET") == 0) {
            have_sender = false;
            strlist_free(&rcpts);
            reply("250 2.0.0 Ok");
        } else if (strncasecmp(cmd, "NOOP", 4) == 0) {
            reply("250 2.0.0 Ok");
        } else if (strncasecmp(cmd, "VRFY", 4) == 0) {
            reply("252 2.0.0 Send some mail, I'll try my best");
        } else if (strcasecmp(cmd, "QUIT") == 0) {
            reply("221 2.0.0 Bye");
            break;
        } else {
            reply("502 5.5.2 Error: command not recognized");
        }
    }
    strlist_free(&rcpts);
    sb_free(&line);
    sb_free(&sender);
    sb_free(&addr);
    sb_free(&msg);
    sb_free(&text);
    return 0;
}
