/*
 * log - diagnostics in the familiar "postern/smtpd[1234]: QUEUEID: key=value" style.
 *
 * Destinations: a log file (maillog_file; opened before chroot, kept open,
 * one write(2) per line with O_APPEND so concurrent processes never interleave),
 * syslog (when maillog_file is empty), and standard error when it is a terminal
 * or when log_to_stderr(1) was called. Lines are bounded (8 KiB) and control
 * characters from untrusted input are escaped, so a client cannot forge lines.
 *
 * msg_fatal() logs and exits 1; msg_panic() logs and aborts (a "cannot happen"
 * check failed). Neither returns.
 */
#ifndef POSTERN_LOG_H
#define POSTERN_LOG_H

#include <stdarg.h>

#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))

/* log_init - name this process: "postern" + "smtpd" gives "postern/smtpd[pid]" */
void log_init(const char *syslog_name, const char *program);
/* log_open_file - append to path (created 0640); returns -1 with errno on failure */
int  log_open_file(const char *path);
/* log_open_syslog - use syslog(3) with the given facility name ("mail") */
void log_open_syslog(const char *facility);
void log_to_stderr(int enable);
void log_set_verbose(int level);
int  log_verbose_level(void);

void msg_info(const char *fmt, ...) PRINTF_LIKE(1, 2);
void msg_warn(const char *fmt, ...) PRINTF_LIKE(1, 2);
void msg_error(const char *fmt, ...) PRINTF_LIKE(1, 2);
void msg_verbose(const char *fmt, ...) PRINTF_LIKE(1, 2);
void msg_fatal(const char *fmt, ...) PRINTF_LIKE(1, 2) __attribute__((noreturn));
void msg_panic(const char *fmt, ...) PRINTF_LIKE(1, 2) __attribute__((noreturn));

#endif
