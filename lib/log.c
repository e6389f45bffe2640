/*
 * log - diagnostics in the familiar "postern/smtpd[1234]: text" style.
 *
 * Interface (log.h): log_init(), log_open_file(), log_open_syslog(),
 * log_to_stderr(), log_set_verbose(), log_verbose_level(), and msg_info(),
 * msg_warn(), msg_error(), msg_verbose(), msg_fatal(), msg_panic().
 *
 * A line is "Nov 22 10:00:00 HOST postern/smtpd[1234]: warning: text\n" in
 * the log file and on standard error; syslog gets "warning: text" with the
 * ident "postern/smtpd" and LOG_PID. Each line is built in a fixed buffer
 * (no allocation, so logging works when memory is exhausted) and leaves in
 * one write(2): with O_APPEND, lines of concurrent processes never interleave.
 *
 * Because messages quote clients (HELO names, addresses, commands), every
 * control character and DEL is written as \ooo: a client cannot end our line
 * and start a forged one. Lines longer than LOG_LINE_MAX are cut, keeping the
 * newline. errno is the same after a msg_*() call as before it, so callers
 * may log and then report errno.
 *
 * Before log_init() the process is called "postern". Standard error gets a
 * copy of each line when log_to_stderr(1) was called, or by default when it
 * is a terminal or no other destination is open (so early errors are seen);
 * log_to_stderr(0) turns it off entirely.
 *
 * The time zone and host name are read at log_init(), before a chroot hides
 * /etc/localtime; syslog is opened with LOG_NDELAY for the same reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LOG_LINE_MAX    8192            /* including the newline */
#define LOG_IDENT_MAX   128
#define LOG_HOST_MAX    256

static char log_ident[LOG_IDENT_MAX] = "postern";
static char log_host[LOG_HOST_MAX];
static int log_fd = -1;                 /* maillog_file, or -1 */
static int log_syslog;                  /* syslog is open */
static int log_stderr = -1;             /* -1: automatic, 0: off, 1: on */
static int log_verbose;

struct log_level {
    const char *label;                  /* text before the message */
    int     priority;                   /* syslog priority */
};

static const struct log_level level_info = {"", LOG_INFO};
static const struct log_level level_warn = {"warning: ", LOG_WARNING};
static const struct log_level level_error = {"error: ", LOG_ERR};
static const struct log_level level_fatal = {"fatal: ", LOG_CRIT};
static const struct log_level level_panic = {"panic: ", LOG_CRIT};

/* log_load_host - remember the host name for file and stderr lines */
static void log_load_host(void)
{
    if (gethostname(log_host, sizeof(log_host)) != 0 || log_host[0] == '\0')
        snprintf(log_host, sizeof(log_host), "localhost");
    log_host[sizeof(log_host) - 1] = '\0';
}

/* log_init - name this process; load time zone and host name while we can */
void log_init(const char *syslog_name, const char *program)
{
    int     saved_errno = errno;
    const char *name = (syslog_name && *syslog_name) ? syslog_name : "postern";

    if (program && *program)
        snprintf(log_ident, sizeof(log_ident), "%s/%s", name, program);
    else
        snprintf(log_ident, sizeof(log_ident), "%s", name);
    tzset();
    /* glibc loads the zone file once; after a chroot the cached copy is used. */
    time_t  now = time(NULL);
    struct tm tm;

    localtime_r(&now, &tm);
    log_load_host();
    if (log_syslog) {
        /* The ident buffer is ours and stays put; reopen so syslog sees the new name. */
        closelog();
        openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
    }
    errno = saved_errno;
}

/* log_open_file - append to path (created 0640); replaces syslog */
int log_open_file(const char *path)
{
    int     fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);

    if (fd < 0)
        return -1;
    if (log_fd >= 0)
        close(log_fd);
    log_fd = fd;
    if (log_syslog) {
        closelog();
        log_syslog = 0;
    }
    return 0;
}

struct facility_name {
    const char *name;
    int     value;
};

static const struct facility_name facility_names[] = {
    {"mail", LOG_MAIL}, {"daemon", LOG_DAEMON}, {"user", LOG_USER},
    {"auth", LOG_AUTH}, {"authpriv", LOG_AUTHPRIV},
    {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2},
    {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5},
    {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7},
};

/* log_open_syslog - use syslog(3); connect now so it still works after chroot */
void log_open_syslog(const char *facility)
{
    int     value = -1;

    for (size_t i = 0; i < sizeof(facility_names) / sizeof(facility_names[0]); i++)
        if (facility && strcasecmp(facility, facility_names[i].name) == 0)
            value = facility_names[i].value;
    if (log_fd >= 0) {
        close(log_fd);
        log_fd = -1;
    }
    if (log_syslog)
        closelog();
    openlog(log_ident, LOG_PID | LOG_NDELAY, value < 0 ? LOG_MAIL : value);
    log_syslog = 1;
    if (value < 0)
        msg_warn("unknown syslog_facility \"%s\"; using \"mail\"", facility ? facility : "");
}

/* log_to_stderr - copy every line to standard error (1) or never (0) */
void log_to_stderr(int enable)
{
    log_stderr = enable ? 1 : 0;
}

/* log_set_verbose - how many -v options were given */
void log_set_verbose(int level)
{
    log_verbose = level < 0 ? 0 : level;
}

/* log_verbose_level - for callers that build costly verbose text */
int log_verbose_level(void)
{
    return log_verbose;
}

/* log_escape - append text to line[*len], escaping unprintables; stop before limit */
static void log_escape(char *line, size_t *len, size_t limit, const char *text)
{
    const unsigned char *cp;

    for (cp = (const unsigned char *) text; *cp; cp++) {
        if (*cp < 0x20 || *cp == 0x7f) {
            if (*len + 4 > limit)
                break;
            line[(*len)++] = '\\';
            line[(*len)++] = (char) ('0' + ((*cp >> 6) & 7));
            line[(*len)++] = (char) ('0' + ((*cp >> 3) & 7));
            line[(*len)++] = (char) ('0' + (*cp & 7));
        } else {
            if (*len + 1 > limit)
                break;
            line[(*len)++] = (char) *cp;
        }
    }
}

/* log_write_all - one write(2) for the whole line; retry only if interrupted */
static void log_write_all(int fd, const char *buf, size_t len)
{
    ssize_t n;

    do {
        n = write(fd, buf, len);
    } while (n < 0 && errno == EINTR);
}

/* log_emit - format, escape and send one message to every destination */
static void log_emit(const struct log_level *level, const char *fmt, va_list ap)
{
    char    text[LOG_LINE_MAX];
    char    line[LOG_LINE_MAX];
    size_t  prefix_len;
    size_t  len;
    int     n;
    int     to_stderr;

    /* vsnprintf truncates safely; %m sees the caller's errno. */
    if (vsnprintf(text, sizeof(text), fmt, ap) < 0)
        snprintf(text, sizeof(text), "(unformattable message: %s)", fmt);

    time_t  now = time(NULL);
    struct tm tm;
    char    stamp[32];

    if (localtime_r(&now, &tm) == NULL || strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm) == 0)
        snprintf(stamp, sizeof(stamp), "%lld", (long long) now);
    if (log_host[0] == '\0')
        log_load_host();
    n = snprintf(line, sizeof(line), "%s %s %s[%ld]: ", stamp, log_host, log_ident, (long) getpid());
    prefix_len = (n < 0) ? 0 : ((size_t) n >= sizeof(line) / 2 ? sizeof(line) / 2 : (size_t) n);
    len = prefix_len;
    log_escape(line, &len, sizeof(line) - 1, level->label);
    log_escape(line, &len, sizeof(line) - 1, text);
    line[len++] = '\n';

    if (log_fd >= 0)
        log_write_all(log_fd, line, len);
    if (log_syslog) {
        /* syslog adds its own time, host and ident; the text stays escaped. */
        line[len - 1] = '\0';
        syslog(level->priority, "%s", line + prefix_len);
        line[len - 1] = '\n';
    }
    if (log_stderr == 1)
        to_stderr = 1;
    else if (log_stderr == 0)
        to_stderr = 0;
    else
        to_stderr = (log_fd < 0 && !log_syslog) || isatty(STDERR_FILENO);
    if (to_stderr && log_fd != STDERR_FILENO)
        log_write_all(STDERR_FILENO, line, len);
}

/* Each msg_*() saves errno first: callers may log and then still report it. */
#define LOG_BODY(level) do { \
        int saved_errno = errno; \
        va_list ap; \
        va_start(ap, fmt); \
        log_emit(&(level), fmt, ap); \
        va_end(ap); \
        errno = saved_errno; \
    } while (0)

/* msg_info - normal operation */
void msg_info(const char *fmt, ...)
{
    LOG_BODY(level_info);
}

/* msg_warn - something is wrong but we carry on */
void msg_warn(const char *fmt, ...)
{
    LOG_BODY(level_warn);
}

/* msg_error - a request failed; the process carries on */
void msg_error(const char *fmt, ...)
{
    LOG_BODY(level_error);
}

/* msg_verbose - info, but only after -v */
void msg_verbose(const char *fmt, ...)
{
    if (log_verbose <= 0)
        return;
    LOG_BODY(level_info);
}

/* msg_fatal - log and exit 1: the process cannot go on */
void msg_fatal(const char *fmt, ...)
{
    LOG_BODY(level_fatal);
    exit(1);
}

/* msg_panic - log and abort: a "cannot happen" check failed */
void msg_panic(const char *fmt, ...)
{
    LOG_BODY(level_panic);
    abort();
}
