/*
 * master_cf - master.cf parser. Format and defaults: see master_cf.h.
 *
 * Interface: master_cf_load(), master_cf_free(), master_cf_find().
 *
 * Everything a service entry says is checked here, so that master can trust
 * struct master_service: y/n fields, numbers in range, "[host:]port" resolved
 * to a numeric port (services(5) name, or a built-in table when /etc/services
 * lacks it, as in a chroot), socket names that cannot leave their directory,
 * and every "-o name=value" checked as config_override() would check it.
 *
 * Diagnostics: "path:line: what is wrong; suggestion" in err, for the line
 * where the entry starts (continuation lines belong to it).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "strbuf.h"
#include "log.h"
#include "config.h"
#include "config_params.h"
#include "master_cf.h"

#define MASTER_SERVICES_MAX 1000
#define MASTER_MAXPROC_MAX  10000
#define MASTER_WAKEUP_MAX   (7 * 86400)
#define MASTER_NAME_MAX     100
#define QUOTE_MAX           80

/* Ports for names that /etc/services may lack (chroot, minimal images). */
static const struct {
    const char *name;
    int     port;
} builtin_ports[] = {
    { "smtp", 25 },
    { "submission", 587 },
    { "submissions", 465 },
    { "smtps", 465 },
    { "imap", 143 },
    { "imaps", 993 },
    { "lmtp", 24 },
};

/* bad - set err to "path:line: message"; returns -1 */
static int PRINTF_LIKE(4, 5) bad(struct strbuf *err, const char *path, int line,
                                 const char *fmt, ...)
{
    va_list ap;

    sb_reset(err);
    sb_printf(err, "%s:%d: ", path, line);
    va_start(ap, fmt);
    sb_vprintf(err, fmt, ap);
    va_end(ap);
    return -1;
}

/* parse_yn - "y", "n" or "-" (the default) */
static int parse_yn(const char *text, bool def, bool *value)
{
    if (strcmp(text, "-") == 0)
        *value = def;
    else if (strcmp(text, "y") == 0)
        *value = true;
    else if (strcmp(text, "n") == 0)
        *value = false;
    else
        return -1;
    return 0;
}

/* parse_count - decimal 0..max, whole text */
static int parse_count(const char *text, size_t len, long max, int *value)
{
    long    v = 0;

    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char) text[i]))
            return -1;
        v = v * 10 + (text[i] - '0');
        if (v > max)
            return -1;
    }
    *value = (int) v;
    return 0;
}

/* resolve_port - number 1..65535 or a service name; numeric text in port */
static int resolve_port(const char *text, char *port, size_t size)
{
    int     num = 0;
    size_t  len = strlen(text);

    if (len > 0 && strspn(text, "0123456789") == len) {
        if (parse_count(text, len, 65535, &num) < 0 || num == 0)
            return -1;
    } else {
        struct servent *se;

        if (len == 0 || len > 32)
            return -1;
        for (size_t i = 0; i < len; i++)
            if (!isalnum((unsigned char) text[i]) && text[i] != '-' && text[i] != '_')
                return -1;
        if ((se = getservbyname(text, "tcp")) != NULL)
            num = ntohs((uint16_t) se->s_port);
        for (size_t i = 0; num == 0 && i < sizeof(builtin_ports) / sizeof(builtin_ports[0]); i++)
            if (strcmp(text, builtin_ports[i].name) == 0)
                num = builtin_ports[i].port;
        if (num <= 0 || num > 65535)
            return -1;
    }
    snprintf(port, size, "%d", num);
    return 0;
}

/* host_valid - a host name or address literal, nothing that could be misread */
static bool host_valid(const char *host, size_t len)
{
    if (len == 0 || len > 255)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char) host[i]) && strchr(".-:%_", host[i]) == NULL)
            return false;
    return true;
}

/* parse_inet - "[host:]port", "[v6]:port" into svc->host and svc->port */
static int parse_inet(const char *path, int line, const char *name,
                      struct master_service *svc, struct strbuf *err)
{
    const char *host = NULL;
    size_t  hlen = 0;
    const char *port;
    char    num[8];

    if (name[0] == '[') {
        const char *close = strchr(name, ']');

        if (close == NULL)
            return bad(err, path, line, "missing ']' in service \"%.*s\"; write an IPv6 "
                       "address as [::1]:25", QUOTE_MAX, name);
        if (close[1] != ':')
            return bad(err, path, line, "expected ':port' after \"%.*s\"; write \"[host]:port\"",
                       (int) (close - name + 1 > QUOTE_MAX ? QUOTE_MAX : close - name + 1), name);
        host = name + 1;
        hlen = (size_t) (close - host);
        port = close + 2;
    } else {
        const char *colon = strrchr(name, ':');

        if (colon && strchr(name, ':') != colon)
            return bad(err, path, line, "IPv6 address in service \"%.*s\" must be in brackets, "
                       "as in [::1]:25", QUOTE_MAX, name);
        if (colon) {
            host = name;
            hlen = (size_t) (colon - name);
            port = colon + 1;
        } else {
            port = name;
        }
    }
    if (host && !host_valid(host, hlen))
        return bad(err, path, line, "bad host in service \"%.*s\"; expected [host:]port",
                   QUOTE_MAX, name);
    if (resolve_port(port, num, sizeof(num)) < 0)
        return bad(err, path, line, "bad port \"%.*s\" in service \"%.*s\"; use a number from "
                   "1 to 65535 or a name from /etc/services", QUOTE_MAX, port, QUOTE_MAX, name);
    svc->host = host ? xstrndup(host, hlen) : NULL;
    svc->port = xstrdup(num);
    return 0;
}

/* file_name_valid - a name that is safe as one path component */
static bool file_name_valid(const char *name)
{
    size_t  len = strlen(name);

    if (len == 0 || len > MASTER_NAME_MAX || name[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char) name[i]) && strchr("._-", name[i]) == NULL)
            return false;
    return true;
}

/* extra_socket_valid - "$param/rel/path": a parameter name, then safe components, no ".." */
static bool extra_socket_valid(const char *spec)
{
    const char *slash = strchr(spec, '/');
    const char *p;

    if (spec[0] != '$' || slash == NULL || slash == spec + 1 || strlen(spec) > MASTER_NAME_MAX * 2)
        return false;
    for (p = spec + 1; p < slash; p++)
        if (!isalnum((unsigned char) *p) && *p != '_')
            return false;
    for (p = slash + 1;;) {
        size_t  len = strcspn(p, "/");

        if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        for (size_t i = 0; i < len; i++)
            if (!isalnum((unsigned char) p[i]) && strchr("._-", p[i]) == NULL)
                return false;
        if (p[len] == '\0')
            return true;
        p += len + 1;
    }
}

/* parse_unix_name - "NAME[,$param/path...]": the socket path and any extra sockets */
static int parse_unix_name(const char *path, int line, char *field, struct master_service *svc,
                           struct strbuf *err)
{
    char   *comma = strchr(field, ',');
    struct strbuf sp = STRBUF_INIT;

    if (comma != NULL)
        *comma = '\0';
    if (!file_name_valid(field))
        return bad(err, path, line, "bad unix service name \"%.*s\"; it becomes a socket file "
                   "name, so use letters, digits, '.', '-' and '_' only", QUOTE_MAX, field);
    while (comma != NULL) {
        char   *item = comma + 1;

        comma = strchr(item, ',');
        if (comma != NULL)
            *comma = '\0';
        if (!extra_socket_valid(item))
            return bad(err, path, line, "bad extra socket \"%.*s\" for service %.*s; use "
                       "$parameter/relative/path, e.g. $virtual_mailbox_base/.postern/auth",
                       QUOTE_MAX, item, QUOTE_MAX, field);
        svc->extra_sockets = xreallocarray(svc->extra_sockets, svc->nextra_sockets + 2, sizeof(char *));
        svc->extra_sockets[svc->nextra_sockets++] = xstrdup(item);
        svc->extra_sockets[svc->nextra_sockets] = NULL;
    }
    sb_printf(&sp, "%s/%s", svc->private_ ? "private" : "public", field);
    svc->socket_path = sb_detach(&sp);
    return 0;
}

/* check_args - "-o name=value" pairs as config_override() would take them */
static int check_args(const char *path, int line, struct config *cfg, char **argv, size_t argc,
                      struct strbuf *err)
{
    struct strbuf why = STRBUF_INIT;

    for (size_t i = 0; i < argc; i++) {
        if (strncmp(argv[i], "-o", 2) != 0)
            continue;
        if (argv[i][2] != '\0') {
            sb_free(&why);
            return bad(err, path, line, "write \"%.*s\" as two words: -o name=value",
                       QUOTE_MAX, argv[i]);
        }
        if (i + 1 >= argc || argv[i + 1][0] == '-') {
            sb_free(&why);
            return bad(err, path, line, "-o must be followed by name=value");
        }
        i++;
        if (strchr(argv[i], '=') == NULL) {
            sb_free(&why);
            return bad(err, path, line, "-o %.*s: expected name=value (no spaces around '=')",
                       QUOTE_MAX, argv[i]);
        }
        if (config_check_override(cfg, argv[i], &why) < 0) {
            bad(err, path, line, "-o %.*s: %s", QUOTE_MAX, argv[i], sb_str(&why));
            sb_free(&why);
            return -1;
        }
    }
    sb_free(&why);
    return 0;
}

/* split - whitespace-separated fields of line, in place */
static char **split(char *line, size_t *count)
{
    char  **fields = NULL;
    size_t  n = 0;
    char   *p = line;

    for (;;) {
        while (isspace((unsigned char) *p))
            p++;
        if (*p == '\0')
            break;
        fields = xreallocarray(fields, n + 1, sizeof(char *));
        fields[n++] = p;
        while (*p && !isspace((unsigned char) *p))
            p++;
        if (*p)
            *p++ = '\0';
    }
    *count = n;
    return fields;
}

/* service_free - one entry's strings */
static void service_free(struct master_service *svc)
{
    free(svc->name);
    free(svc->host);
    free(svc->port);
    free(svc->socket_path);
    for (size_t i = 0; i < svc->nextra_sockets; i++)
        free(svc->extra_sockets[i]);
    free(svc->extra_sockets);
    free(svc->command);
    for (size_t i = 0; i < svc->nargs; i++)
        free(svc->args[i]);
    free(svc->args);
    memset(svc, 0, sizeof(*svc));
}

/* parse_entry - one logical line into svc */
static int parse_entry(const char *path, int line, char **f, size_t nf, struct config *cfg,
                       struct master_service *svc, struct strbuf *err)
{
    static const char *const yn_name[] = { "private", "unpriv", "chroot" };
    bool    yn[3];
    size_t  len;

    memset(svc, 0, sizeof(*svc));
    svc->line = line;
    if (nf < 8)
        return bad(err, path, line, "expected at least 8 fields (service type private unpriv "
                   "chroot wakeup maxproc command), found %zu", nf);
    if (strcmp(f[1], "inet") == 0)
        svc->type = MASTER_INET;
    else if (strcmp(f[1], "unix") == 0)
        svc->type = MASTER_UNIX;
    else
        return bad(err, path, line, "unsupported service type \"%.*s\" for %.*s; Postern "
                   "supports inet and unix", QUOTE_MAX, f[1], QUOTE_MAX, f[0]);
    for (int i = 0; i < 3; i++)
        if (parse_yn(f[2 + i], true, &yn[i]) < 0)
            return bad(err, path, line, "bad %s field \"%.*s\" for service %.*s; expected y, n "
                       "or -", yn_name[i], QUOTE_MAX, f[2 + i], QUOTE_MAX, f[0]);
    svc->private_ = yn[0];
    svc->unpriv = yn[1];
    svc->chroot = yn[2];

    /* Postfix's trailing '?' (wake only if used) means nothing to us. */
    len = strlen(f[5]);
    if (strcmp(f[5], "-") == 0)
        svc->wakeup = 0;
    else if (parse_count(f[5], len > 1 && f[5][len - 1] == '?' ? len - 1 : len,
                         MASTER_WAKEUP_MAX, &svc->wakeup) < 0)
        return bad(err, path, line, "bad wakeup field \"%.*s\" for service %.*s; expected "
                   "seconds (0 to %d) or -", QUOTE_MAX, f[5], QUOTE_MAX, f[0], MASTER_WAKEUP_MAX);
    if (strcmp(f[6], "-") == 0) {
        long long def = config_int(cfg, "default_process_limit");

        svc->maxproc = def > MASTER_MAXPROC_MAX ? MASTER_MAXPROC_MAX : (int) def;
    } else if (parse_count(f[6], strlen(f[6]), MASTER_MAXPROC_MAX, &svc->maxproc) < 0) {
        return bad(err, path, line, "bad maxproc field \"%.*s\" for service %.*s; expected a "
                   "number from 0 to %d or -", QUOTE_MAX, f[6], QUOTE_MAX, f[0], MASTER_MAXPROC_MAX);
    }
    if (!file_name_valid(f[7]))
        return bad(err, path, line, "bad command \"%.*s\" for service %.*s; expected a program "
                   "name in daemon_directory, not a path", QUOTE_MAX, f[7], QUOTE_MAX, f[0]);
    if (check_args(path, line, cfg, f + 8, nf - 8, err) < 0)
        return -1;

    if (svc->type == MASTER_INET) {
        if (parse_inet(path, line, f[0], svc, err) < 0)
            return -1;
    } else if (parse_unix_name(path, line, f[0], svc, err) < 0) {
        return -1;
    }
    svc->name = xstrdup(f[0]);
    svc->command = xstrdup(f[7]);
    svc->nargs = nf - 8;
    svc->args = xcalloc(svc->nargs + 1, sizeof(char *));
    for (size_t i = 0; i < svc->nargs; i++)
        svc->args[i] = xstrdup(f[8 + i]);
    return 0;
}

/* check_duplicate - the same service twice, or two inet services on one address */
static int check_duplicate(const struct master_cf *mcf, const struct master_service *svc,
                           struct strbuf *err)
{
    for (size_t i = 0; i < mcf->count; i++) {
        const struct master_service *o = &mcf->services[i];

        if (o->type != svc->type)
            continue;
        if (strcmp(o->name, svc->name) == 0)
            return bad(err, mcf->path, svc->line, "duplicate service %s %s; it is already "
                       "defined at line %d", svc->name, svc->type == MASTER_INET ? "inet" : "unix",
                       o->line);
        if (svc->type == MASTER_INET && strcmp(o->port, svc->port) == 0
            && (o->host == NULL ? svc->host == NULL
                : svc->host != NULL && strcmp(o->host, svc->host) == 0))
            return bad(err, mcf->path, svc->line, "service %s listens on the same address as "
                       "service %s at line %d", svc->name, o->name, o->line);
    }
    return 0;
}

/* master_cf_load - parse path; cfg supplies defaults. -1 with "path:line: message" in err */
int master_cf_load(const char *path, struct config *cfg, struct master_cf *out, struct strbuf *err)
{
    struct config_reader r;
    struct strbuf line = STRBUF_INIT;
    int     lineno = 0;
    int     rc;
    FILE   *fp;

    memset(out, 0, sizeof(*out));
    out->path = xstrdup(path);
    if ((fp = fopen(path, "re")) == NULL) {
        sb_reset(err);
        sb_printf(err, "%s: cannot open: %s", path, strerror(errno));
        master_cf_free(out);
        return -1;
    }
    config_reader_init(&r, fp, out->path);
    while ((rc = config_reader_next(&r, &line, &lineno, err)) > 0) {
        struct master_service svc;
        size_t  nf;
        char  **f = split(line.data, &nf);

        if (out->count >= MASTER_SERVICES_MAX) {
            rc = bad(err, path, lineno, "more than %d services", MASTER_SERVICES_MAX);
        } else if ((rc = parse_entry(path, lineno, f, nf, cfg, &svc, err)) < 0
                   || (rc = check_duplicate(out, &svc, err)) < 0) {
            service_free(&svc);
        } else {
            out->services = xreallocarray(out->services, out->count + 1, sizeof(svc));
            out->services[out->count++] = svc;
        }
        free(f);
        if (rc < 0)
            break;
    }
    config_reader_free(&r);
    sb_free(&line);
    fclose(fp);
    if (rc < 0) {
        master_cf_free(out);
        return -1;
    }
    return 0;
}

/* master_cf_free - release what master_cf_load built */
void master_cf_free(struct master_cf *mcf)
{
    for (size_t i = 0; i < mcf->count; i++)
        service_free(&mcf->services[i]);
    free(mcf->services);
    free(mcf->path);
    memset(mcf, 0, sizeof(*mcf));
}

/* master_cf_find - first service with this name, or NULL */
const struct master_service *master_cf_find(const struct master_cf *mcf, const char *name)
{
    for (size_t i = 0; i < mcf->count; i++)
        if (strcmp(mcf->services[i].name, name) == 0)
            return &mcf->services[i];
    return NULL;
}

char  **master_cf_daemon_argv(const struct master_service *svc, const char *config_dir, unsigned flags)
{
    size_t  n = 0;
    char  **argv = xcalloc(12 + svc->nargs + 1, sizeof(char *));

    argv[n++] = svc->command;
    argv[n++] = "-c";
    argv[n++] = (char *) config_dir;
    argv[n++] = "-n";
    argv[n++] = svc->name;
    argv[n++] = "-t";
    argv[n++] = svc->type == MASTER_INET ? "inet" : "unix";
    if (svc->unpriv)
        argv[n++] = "-u";
    if (svc->chroot)
        argv[n++] = "-r";
    if (flags & MASTER_ARGV_VERBOSE)
        argv[n++] = "-v";
    if (flags & MASTER_ARGV_CHECK)
        argv[n++] = "-C";
    for (size_t i = 0; i < svc->nargs && svc->args[i]; i++)
        argv[n++] = svc->args[i];
    argv[n] = NULL;
    return argv;
}
