/*
 * pgsql - PostgreSQL connections and prepared query templates. See pgsql.h.
 *
 * Interface (pgsql.h): pgsql_settings_init/free/set(), pgsql_parse_conninfo(),
 * pgsql_conn_new/free/describe(), pgsql_stmt_new/free/sql/nparams(),
 * pgsql_stmt_exec(), pgsql_exec_params(), pgsql_exec_script(), pgsql_utf8_valid(),
 * pgsql_read_config().
 *
 * libpq is used in its asynchronous form for queries (send, then poll() the
 * socket until a deadline), so that a server that stops answering costs at
 * most query_timeout, not a hung daemon. Connecting uses libpq's own
 * connect_timeout. Name resolution of a host name is libpq's (getaddrinfo),
 * which a chrooted daemon may not be able to do: configure IP addresses.
 *
 * Diagnostics: nothing is logged here; reasons come back in err, with the
 * server's first message line (never the password).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mem.h"
#include "strbuf.h"
#include "strlist.h"
#include "pgsql.h"
#include "utf8.h"

#define CONFIG_MAX_SIZE     (1024 * 1024)
#define CONFIG_MAX_LINE     65536
#define MAX_ERROR_TEXT      300         /* of a server message, in err */

struct pgsql_host {
    char   *host;                       /* name, address or socket directory */
    char   *port;                       /* NULL: libpq's default */
    long long dead_until;               /* monotonic ms: skip until then */
};

struct pgsql_conn {
    struct pgsql_settings set;
    struct pgsql_host hosts[PGSQL_MAX_HOSTS];
    int     nhosts;
    PGconn *pg;
    pid_t   pid;                        /* of the process that connected */
    unsigned long gen;                  /* connections made: statements prepared per generation */
    unsigned long next_stmt;
    bool    in_transaction;             /* pgsql_exec_params() left a BEGIN open */
    struct strbuf describe;
};

struct pgsql_param {
    char   *template;                   /* unescaped literal text with its %-escapes */
};

struct pgsql_stmt {
    struct pgsql_conn *conn;
    char    name[32];
    struct strbuf sql;
    struct pgsql_param params[PGSQL_MAX_PARAMS];
    int     nparams;
    pgsql_scan_fn scan;
    unsigned long prepared_gen;         /* 0: never */
};

/* now_ms - monotonic milliseconds */
static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Settings.
 */

void pgsql_settings_init(struct pgsql_settings *s)
{
    memset(s, 0, sizeof(*s));
    s->connect_timeout = 3;            /* a daemon waits at most this per host ... */
    s->query_timeout = 5;              /* ... and this per query */
    s->retry_interval = 10;
}

void pgsql_settings_free(struct pgsql_settings *s)
{
    strlist_free(&s->hosts);
    free(s->user);
    free(s->dbname);
    free(s->sslmode);
    if (s->password) {
        explicit_bzero(s->password, strlen(s->password));
        free(s->password);
    }
    memset(s, 0, sizeof(*s));
}

/* set_int - a bounded number of seconds */
static int set_int(int *out, const char *name, const char *value, int min, int max,
                   struct strbuf *err)
{
    char   *end;
    long    v;

    errno = 0;
    v = strtol(value, &end, 10);
    if (errno || end == value || *end || v < min || v > max) {
        sb_printf(err, "%s = %s: expected a number of seconds from %d to %d", name, value, min, max);
        return -1;
    }
    *out = (int) v;
    return 0;
}

/* set_str - replace a string setting */
static void set_str(char **out, const char *value)
{
    free(*out);
    *out = xstrdup(value);
}

int pgsql_settings_set(struct pgsql_settings *s, const char *name, const char *value,
                       struct strbuf *err)
{
    if (strcmp(name, "hosts") == 0) {
        strlist_free(&s->hosts);
        strlist_split(&s->hosts, value);
        if (s->hosts.count > PGSQL_MAX_HOSTS) {
            sb_printf(err, "hosts: more than %d hosts", PGSQL_MAX_HOSTS);
            return -1;
        }
        return 0;
    }
    if (strcmp(name, "user") == 0) {
        set_str(&s->user, value);
        return 0;
    }
    if (strcmp(name, "password") == 0) {
        if (s->password)
            explicit_bzero(s->password, strlen(s->password));
        set_str(&s->password, value);
        return 0;
    }
    if (strcmp(name, "dbname") == 0) {
        set_str(&s->dbname, value);
        return 0;
    }
    if (strcmp(name, "sslmode") == 0) {
        static const char *const modes[] = { "disable", "allow", "prefer", "require",
            "verify-ca", "verify-full" };

        for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
            if (strcmp(value, modes[i]) == 0) {
                set_str(&s->sslmode, value);
                return 0;
            }
        }
        sb_printf(err, "sslmode = %s: expected disable, allow, prefer, require, verify-ca "
                  "or verify-full", value);
        return -1;
    }
    if (strcmp(name, "connect_timeout") == 0)
        return set_int(&s->connect_timeout, name, value, 1, 300, err);
    if (strcmp(name, "query_timeout") == 0)
        return set_int(&s->query_timeout, name, value, 1, 3600, err);
    if (strcmp(name, "retry_interval") == 0)
        return set_int(&s->retry_interval, name, value, 0, 3600, err);
    return 1;
}

int pgsql_parse_conninfo(struct pgsql_settings *s, const char *text, struct strbuf *err)
{
    struct strlist words = STRLIST_INIT;
    struct strbuf hosts = STRBUF_INIT;
    const char *port = NULL;
    int     rc = 0;

    /* Dovecot's connect string: space-separated key=value, host may repeat. */
    strlist_split(&words, text);
    for (size_t i = 0; i < words.count && rc == 0; i++) {
        char   *w = words.items[i];
        char   *eq = strchr(w, '=');

        if (eq == NULL || eq == w) {
            sb_printf(err, "connect: \"%.80s\": expected name=value", w);
            rc = -1;
            break;
        }
        *eq++ = '\0';
        if (strcmp(w, "host") == 0) {
            if (sb_len(&hosts))
                sb_putc(&hosts, ' ');
            sb_puts(&hosts, eq);
        } else if (strcmp(w, "port") == 0) {
            port = eq;
        } else if (strcmp(w, "hosts") == 0) {
            sb_printf(err, "connect: use host=, not hosts=");
            rc = -1;
        } else if ((rc = pgsql_settings_set(s, w, eq, err)) == 1) {
            sb_printf(err, "connect: unknown setting \"%.40s\" (known: host port dbname user "
                      "password connect_timeout query_timeout retry_interval sslmode)", w);
            rc = -1;
        }
    }
    if (rc == 0 && sb_len(&hosts) == 0)
        sb_set(&hosts, "127.0.0.1");
    if (rc == 0) {
        strlist_free(&s->hosts);
        strlist_split(&s->hosts, sb_str(&hosts));
        if (port) {
            /* one port for every host given without its own */
            for (size_t i = 0; i < s->hosts.count; i++) {
                char   *h = s->hosts.items[i];
                struct strbuf hp = STRBUF_INIT;

                if (strncmp(h, "unix:", 5) == 0 || (h[0] != '/' && strrchr(h, ':') != NULL)
                    || strstr(h, "/.s.PGSQL.") != NULL)
                    continue;
                if (h[0] == '/')        /* a socket directory: the port names the socket */
                    sb_printf(&hp, "unix:%s/.s.PGSQL.%s", h, port);
                else
                    sb_printf(&hp, "%s:%s", h, port);
                free(s->hosts.items[i]);
                s->hosts.items[i] = sb_detach(&hp);
            }
        }
        if (s->hosts.count > PGSQL_MAX_HOSTS) {
            sb_printf(err, "connect: more than %d hosts", PGSQL_MAX_HOSTS);
            rc = -1;
        }
    }
    strlist_free(&words);
    sb_free(&hosts);
    return rc;
}

/*
 * Configuration files.
 */

/* strip - trim white space in place */
static char *strip(char *s)
{
    char   *end;

    while (isspace((unsigned char) *s))
        s++;
    end = s + strlen(s);
    while (end > s && isspace((unsigned char) end[-1]))
        *--end = '\0';
    return s;
}

/* finish_setting - "name = value" of one logical line */
static int finish_setting(const char *path, int lineno, char *line, pgsql_config_fn store,
                          void *arg, struct strbuf *err)
{
    char   *eq = strchr(line, '=');
    char   *name, *value;
    size_t  vlen;
    struct strbuf why = STRBUF_INIT;
    int     rc;

    if (eq == NULL) {
        sb_printf(err, "%s:%d: expected name = value", path, lineno);
        return -1;
    }
    *eq = '\0';
    name = strip(line);
    value = strip(eq + 1);
    if (*name == '\0') {
        sb_printf(err, "%s:%d: missing name before '='", path, lineno);
        return -1;
    }
    /* Dovecot writes connect = "host=... dbname=..." */
    vlen = strlen(value);
    if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
        value[vlen - 1] = '\0';
        value++;
    }
    rc = store(arg, name, value, &why);
    if (rc < 0)
        sb_printf(err, "%s:%d: %s", path, lineno, sb_str(&why));
    sb_free(&why);
    return rc < 0 ? -1 : 0;
}

int pgsql_read_config(const char *path, pgsql_config_fn store, void *arg, struct strbuf *err)
{
    int     fd;
    struct stat st;
    char   *text, *p, *nl;
    ssize_t got;
    size_t  have = 0;
    struct strbuf logical = STRBUF_INIT;
    int     lineno = 0, entry_line = 0, rc = -1;
    bool    backslash = false;          /* the previous line ended in '\' */

    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0) {
        sb_printf(err, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > CONFIG_MAX_SIZE) {
        sb_printf(err, "%s: not a regular file of at most %d bytes", path, CONFIG_MAX_SIZE);
        close(fd);
        return -1;
    }
    text = xmalloc((size_t) st.st_size + 1);
    while (have < (size_t) st.st_size && (got = read(fd, text + have, (size_t) st.st_size - have)) > 0)
        have += (size_t) got;
    close(fd);
    text[have] = '\0';
    if (memchr(text, '\0', have) != NULL) {
        sb_printf(err, "%s: NUL byte in file; is this a text file?", path);
        goto out;
    }
    for (p = text; *p; p = nl) {
        char   *line = p, *t;
        size_t  len;
        bool    cont;

        if ((nl = strchr(p, '\n')) != NULL)
            *nl++ = '\0';
        else
            nl = p + strlen(p);
        lineno++;
        len = strlen(line);
        if (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        t = strip(line);
        cont = backslash || (entry_line && line != t && *t != '\0' && *t != '#');
        if (!cont && (*t == '\0' || *t == '#')) {
            continue;
        }
        backslash = false;
        len = strlen(t);
        if (len > 0 && t[len - 1] == '\\') {
            t[--len] = '\0';
            backslash = true;
        }
        if (cont && entry_line) {
            if (sb_len(&logical) + len + 1 > CONFIG_MAX_LINE) {
                sb_printf(err, "%s:%d: setting longer than %d bytes", path, entry_line, CONFIG_MAX_LINE);
                goto out;
            }
            sb_putc(&logical, ' ');
            sb_puts(&logical, t);
            continue;
        }
        if (cont) {
            sb_printf(err, "%s:%d: continuation line without a setting before it", path, lineno);
            goto out;
        }
        if (entry_line && finish_setting(path, entry_line, logical.data, store, arg, err) < 0)
            goto out;
        sb_set(&logical, t);
        entry_line = lineno;
    }
    if (entry_line && finish_setting(path, entry_line, logical.data, store, arg, err) < 0)
        goto out;
    rc = 0;
out:
    free(text);
    sb_free(&logical);
    return rc;
}

/*
 * Connections.
 */

/* parse_host - one hosts entry into host and port; -1 with err */
static int parse_host(const char *text, struct pgsql_host *h, struct strbuf *err)
{
    const char *p = text;
    const char *colon;

    memset(h, 0, sizeof(*h));
    if (strncmp(p, "unix:", 5) == 0 || p[0] == '/') {
        const char *path = p[0] == '/' ? p : p + 5;
        const char *base = strrchr(path, '/');

        if (path[0] != '/') {
            sb_printf(err, "hosts: %s: expected unix:/absolute/path", text);
            return -1;
        }
        /* "unix:/run/postgresql/.s.PGSQL.5432" (the socket) or "unix:/run/postgresql" (its dir) */
        if (base && strncmp(base + 1, ".s.PGSQL.", 9) == 0 && base[10] != '\0') {
            h->host = xstrndup(path, (size_t) (base == path ? 1 : base - path));
            h->port = xstrdup(base + 10);
        } else {
            h->host = xstrdup(path);
        }
        return 0;
    }
    if (strncmp(p, "inet:", 5) == 0)
        p += 5;
    if (p[0] == '[') {
        const char *close = strchr(p, ']');

        if (close == NULL || (close[1] != '\0' && close[1] != ':')) {
            sb_printf(err, "hosts: %s: expected [address]:port", text);
            return -1;
        }
        h->host = xstrndup(p + 1, (size_t) (close - p - 1));
        if (close[1] == ':')
            h->port = xstrdup(close + 2);
    } else if ((colon = strchr(p, ':')) != NULL) {
        if (strchr(colon + 1, ':') != NULL) {
            sb_printf(err, "hosts: %s: write an IPv6 address as [address]:port", text);
            return -1;
        }
        h->host = xstrndup(p, (size_t) (colon - p));
        h->port = xstrdup(colon + 1);
    } else {
        h->host = xstrdup(p);
    }
    if (h->host[0] == '\0' || (h->port && (h->port[0] == '\0'
                                           || strspn(h->port, "0123456789") != strlen(h->port)
                                           || atoi(h->port) < 1 || atoi(h->port) > 65535))) {
        sb_printf(err, "hosts: %s: expected host, host:port, [v6]:port or unix:/path", text);
        free(h->host);
        free(h->port);
        memset(h, 0, sizeof(*h));
        return -1;
    }
    return 0;
}

struct pgsql_conn *pgsql_conn_new(struct pgsql_settings *s)
{
    struct pgsql_conn *c = xcalloc(1, sizeof(*c));
    struct strbuf err = STRBUF_INIT;

    c->set = *s;
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < c->set.hosts.count && c->nhosts < PGSQL_MAX_HOSTS; i++)
        if (parse_host(c->set.hosts.items[i], &c->hosts[c->nhosts], &err) == 0)
            c->nhosts++;
    sb_free(&err);
    sb_printf(&c->describe, "%s@%s%s%s/%s", c->set.user ? c->set.user : "",
              c->nhosts ? c->hosts[0].host : "?", c->nhosts && c->hosts[0].port ? ":" : "",
              c->nhosts && c->hosts[0].port ? c->hosts[0].port : "",
              c->set.dbname ? c->set.dbname : "");
    return c;
}

/* conn_drop - forget the connection (the server or network failed it) */
static void conn_drop(struct pgsql_conn *c)
{
    if (c->pg == NULL)
        return;
    /*
     * A connection inherited across fork() belongs to the parent: closing it
     * politely would end the parent's session. Leave it to the parent.
     */
    if (c->pid == getpid())
        PQfinish(c->pg);
    c->pg = NULL;
}

void pgsql_conn_free(struct pgsql_conn *c)
{
    if (c == NULL)
        return;
    conn_drop(c);
    for (int i = 0; i < c->nhosts; i++) {
        free(c->hosts[i].host);
        free(c->hosts[i].port);
    }
    pgsql_settings_free(&c->set);
    sb_free(&c->describe);
    free(c);
}

const char *pgsql_conn_describe(struct pgsql_conn *c)
{
    return sb_str(&c->describe);
}

/* first_line - the first line of a libpq message, bounded, into err */
static void first_line(struct strbuf *err, const char *msg)
{
    size_t  len;

    if (msg == NULL || *msg == '\0')
        msg = "unknown error";
    len = strcspn(msg, "\r\n");
    if (len > MAX_ERROR_TEXT)
        len = MAX_ERROR_TEXT;
    for (size_t i = 0; i < len; i++)
        sb_putc(err, isprint((unsigned char) msg[i]) ? msg[i] : '?');
}

/* conn_open - connect to the first live host; -1 with err */
static int conn_open(struct pgsql_conn *c, struct strbuf *err)
{
    long long now = now_ms();
    char    ctimeout[16], options[64];
    int     tried = 0;

    if (c->pg && c->pid != getpid())
        conn_drop(c);
    if (c->pg && PQstatus(c->pg) == CONNECTION_OK)
        return 0;
    conn_drop(c);
    snprintf(ctimeout, sizeof(ctimeout), "%d", c->set.connect_timeout);
    snprintf(options, sizeof(options), "-c statement_timeout=%lld",
             (long long) c->set.query_timeout * 1000);
    for (int i = 0; i < c->nhosts; i++) {
        struct pgsql_host *h = &c->hosts[i];
        const char *keys[16], *vals[16];
        int     n = 0;
        PGconn *pg;

        if (h->dead_until > now)
            continue;
        tried++;
#define KV(k, v) do { if (v) { keys[n] = (k); vals[n] = (v); n++; } } while (0)
        KV("host", h->host);
        KV("port", h->port);
        KV("user", c->set.user);
        KV("password", c->set.password);
        KV("dbname", c->set.dbname);
        keys[n] = "connect_timeout", vals[n++] = ctimeout;
        keys[n] = "options", vals[n++] = options;
        KV("sslmode", c->set.sslmode);
        KV("gssencmode", "disable");    /* no Kerberos library loads inside a chroot */
        KV("application_name", "postern");
        KV("client_encoding", "UTF8");
        KV("keepalives", "1");
#undef KV
        keys[n] = vals[n] = NULL;
        pg = PQconnectdbParams(keys, vals, 0);
        if (pg && PQstatus(pg) == CONNECTION_OK && PQsetnonblocking(pg, 1) == 0) {
            if (c->in_transaction) {
                /*
                 * The transaction died with the old connection: the caller's next
                 * statement must not run as if still in it. It fails once; after that
                 * the connection is a fresh one.
                 */
                PQfinish(pg);
                c->in_transaction = false;
                sb_set(err, "the connection broke inside a transaction; it was rolled back");
                return -1;
            }
            c->pg = pg;
            c->pid = getpid();
            c->gen++;
            h->dead_until = 0;
            return 0;
        }
        if (sb_len(err))
            sb_puts(err, "; ");
        sb_printf(err, "connect to %s%s%s: ", h->host, h->port ? ":" : "", h->port ? h->port : "");
        first_line(err, pg ? PQerrorMessage(pg) : "out of memory");
        if (pg)
            PQfinish(pg);
        h->dead_until = now_ms() + (long long) c->set.retry_interval * 1000;
    }
    if (tried == 0)
        sb_printf(err, "no PostgreSQL server reachable (every host failed less than %ds ago)",
                  c->set.retry_interval);
    return -1;
}

/*
 * wait_result - flush what was sent and collect the results until the
 * deadline; the first error result wins, else the last one. 0 with *res,
 * -1 with err when the connection broke, -2 when the deadline passed (the
 * connection is dropped either way: its state is unknown). A broken
 * connection is worth one retry (the server restarted); a server that does
 * not answer is not: a retry would double the wait.
 */
static int wait_result(struct pgsql_conn *c, PGresult **res, struct strbuf *err)
{
    long long deadline = now_ms() + (long long) c->set.query_timeout * 1000;
    PGresult *keep = NULL, *r;
    int     flushed;

    *res = NULL;
    for (;;) {
        struct pollfd pfd;
        long long left;
        int     rc;

        flushed = PQflush(c->pg);
        if (flushed < 0)
            goto broken;
        if (flushed == 0) {
            while (!PQisBusy(c->pg)) {
                if ((r = PQgetResult(c->pg)) == NULL) {
                    if (keep == NULL)
                        goto broken;
                    *res = keep;
                    return 0;
                }
                if (keep && PQresultStatus(keep) == PGRES_FATAL_ERROR) {
                    PQclear(r);
                } else {
                    PQclear(keep);
                    keep = r;
                }
            }
        }
        left = deadline - now_ms();
        if (left <= 0) {
            PQclear(keep);
            sb_printf(err, "%s: no answer within query_timeout = %ds", pgsql_conn_describe(c),
                      c->set.query_timeout);
            conn_drop(c);
            return -2;
        }
        pfd.fd = PQsocket(c->pg);
        pfd.events = POLLIN | (flushed == 1 ? POLLOUT : 0);
        pfd.revents = 0;
        if (pfd.fd < 0)
            goto broken;
        rc = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int) left);
        if (rc < 0 && errno != EINTR)
            goto broken;
        if (rc > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR)) && PQconsumeInput(c->pg) == 0)
            goto broken;
    }
broken:
    PQclear(keep);
    sb_printf(err, "%s: ", pgsql_conn_describe(c));
    first_line(err, PQerrorMessage(c->pg));
    conn_drop(c);
    return -1;
}

/* result_error - the server's message for a failed result, into err */
static void result_error(struct pgsql_conn *c, PGresult *r, struct strbuf *err)
{
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);

    sb_printf(err, "%s: %s%s", pgsql_conn_describe(c), state ? state : "", state ? " " : "");
    first_line(err, PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
               ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : PQresultErrorMessage(r));
}

/*
 * Templates.
 */

/* ident_char - may be part of an SQL word (so an escape next to it would splice) */
static bool ident_char(int ch)
{
    return isalnum(ch) || ch == '_' || ch == '.' || ch == '"' || ch == '$' || ch >= 0x80;
}

/* literal_end - end of a quoted run starting at p (the quote); NULL if unterminated */
static const char *literal_end(const char *p, char quote, bool backslash)
{
    for (p++; *p; p++) {
        if (backslash && *p == '\\' && p[1]) {
            p++;
        } else if (*p == quote) {
            if (p[1] != quote)
                return p;
            p++;
        }
    }
    return NULL;
}

/* check_escapes - every '%' of text is a known escape or "%%"; -1 with err */
static int check_escapes(const char *text, size_t len, pgsql_scan_fn scan, struct strbuf *err)
{
    for (size_t i = 0; i < len; i++) {
        size_t  n;

        if (text[i] != '%')
            continue;
        if (i + 1 < len && text[i + 1] == '%') {
            i++;
            continue;
        }
        if (i + 1 >= len || (n = scan(text + i + 1)) == 0 || i + 1 + n > len) {
            sb_printf(err, "unknown escape \"%%%.*s\" (write %%%% for a literal %%)",
                      i + 1 < len ? 1 : 0, text + i + 1);
            return -1;
        }
        i += n;
    }
    return 0;
}

/* add_param - a new $N for template text; -1 with err */
static int add_param(struct pgsql_stmt *st, const char *text, size_t len, struct strbuf *err)
{
    if (st->nparams >= PGSQL_MAX_PARAMS) {
        sb_printf(err, "more than %d escapes", PGSQL_MAX_PARAMS);
        return -1;
    }
    st->params[st->nparams].template = xstrndup(text, len);
    st->nparams++;
    sb_printf(&st->sql, "$%d", st->nparams);
    return 0;
}

/* compile - template into st->sql and st->params; -1 with err */
static int compile(struct pgsql_stmt *st, const char *tpl, struct strbuf *err)
{
    const char *p = tpl, *end;

    while (*p) {
        bool    estring = false;

        if ((*p == 'E' || *p == 'e') && p[1] == '\'' && (p == tpl || !ident_char((unsigned char) p[-1]))) {
            estring = true;
            sb_putc(&st->sql, *p++);
        }
        if (*p == '\'') {
            if ((end = literal_end(p, '\'', estring)) == NULL) {
                sb_set(err, "unterminated quoted string");
                return -1;
            }
            if (memchr(p + 1, '%', (size_t) (end - p - 1)) == NULL) {
                sb_append(&st->sql, p, (size_t) (end - p + 1));
                p = end + 1;
                continue;
            }
            if (estring) {
                sb_set(err, "escapes inside an E'...' string are not supported; use '...'");
                return -1;
            }
            /* The literal's text, '' unescaped, becomes the parameter's template. */
            {
                struct strbuf text = STRBUF_INIT;
                int     rc;

                for (const char *q = p + 1; q < end; q++) {
                    sb_putc(&text, *q);
                    if (*q == '\'')
                        q++;
                }
                rc = check_escapes(sb_str(&text), sb_len(&text), st->scan, err);
                if (rc == 0)
                    rc = add_param(st, sb_str(&text), sb_len(&text), err);
                sb_free(&text);
                if (rc < 0)
                    return -1;
            }
            p = end + 1;
            continue;
        }
        if (estring)
            continue;
        if (*p == '"') {
            if ((end = literal_end(p, '"', false)) == NULL) {
                sb_set(err, "unterminated quoted identifier");
                return -1;
            }
            if (memchr(p, '%', (size_t) (end - p)) != NULL) {
                sb_set(err, "escape inside a quoted identifier: keys are values, never names");
                return -1;
            }
            sb_append(&st->sql, p, (size_t) (end - p + 1));
            p = end + 1;
            continue;
        }
        if (p[0] == '-' && p[1] == '-') {
            size_t  n = strcspn(p, "\n");

            sb_append(&st->sql, p, n);
            p += n;
            continue;
        }
        if (p[0] == '/' && p[1] == '*') {
            const char *q = p + 2;
            int     depth = 1;

            while (*q && depth > 0) {
                if (q[0] == '/' && q[1] == '*') {
                    depth++;
                    q += 2;
                } else if (q[0] == '*' && q[1] == '/') {
                    depth--;
                    q += 2;
                } else {
                    q++;
                }
            }
            if (depth > 0) {
                sb_set(err, "unterminated /* comment");
                return -1;
            }
            sb_append(&st->sql, p, (size_t) (q - p));
            p = q;
            continue;
        }
        if (*p == '$' && (p == tpl || !ident_char((unsigned char) p[-1]))) {
            const char *q = p + 1;

            if (isdigit((unsigned char) *q)) {
                sb_set(err, "$N parameters are ours: write %s (or another escape) instead");
                return -1;
            }
            while (isalnum((unsigned char) *q) || *q == '_')
                q++;
            if (*q == '$') {
                /* dollar quoting: $tag$ ... $tag$ */
                size_t  taglen = (size_t) (q - p + 1);
                const char *close = q + 1;

                while ((close = strchr(close, '$')) != NULL && strncmp(close, p, taglen) != 0)
                    close++;
                if (close == NULL) {
                    sb_set(err, "unterminated dollar-quoted string");
                    return -1;
                }
                if (memchr(p, '%', (size_t) (close - p)) != NULL) {
                    sb_set(err, "escapes inside a dollar-quoted string are not supported; use '...'");
                    return -1;
                }
                sb_append(&st->sql, p, (size_t) (close + taglen - p));
                p = close + taglen;
                continue;
            }
        }
        if (*p == '%') {
            size_t  n;

            if (p[1] == '%') {
                sb_putc(&st->sql, '%');
                p += 2;
                continue;
            }
            if (check_escapes(p, strlen(p) < 16 ? strlen(p) : 16, st->scan, err) < 0)
                return -1;
            n = st->scan(p + 1);
            if ((p > tpl && ident_char((unsigned char) p[-1])) || ident_char((unsigned char) p[1 + n])
                || p[1 + n] == '%' || p[1 + n] == '\'') {
                sb_printf(err, "escape \"%.*s\" is glued to SQL text; a key may only stand for "
                          "a value: write '%.*s'", (int) n + 1, p, (int) n + 1, p);
                return -1;
            }
            if (add_param(st, p, n + 1, err) < 0)
                return -1;
            p += n + 1;
            continue;
        }
        sb_putc(&st->sql, *p++);
    }
    return 0;
}

struct pgsql_stmt *pgsql_stmt_new(struct pgsql_conn *c, const char *template,
                                  pgsql_scan_fn scan, struct strbuf *err)
{
    struct pgsql_stmt *st = xcalloc(1, sizeof(*st));

    st->conn = c;
    st->scan = scan;
    sb_init(&st->sql);
    snprintf(st->name, sizeof(st->name), "postern_%lu", ++c->next_stmt);
    if (compile(st, template, err) < 0) {
        pgsql_stmt_free(st);
        return NULL;
    }
    return st;
}

void pgsql_stmt_free(struct pgsql_stmt *st)
{
    if (st == NULL)
        return;
    for (int i = 0; i < st->nparams; i++)
        free(st->params[i].template);
    sb_free(&st->sql);
    free(st);
}

const char *pgsql_stmt_sql(const struct pgsql_stmt *st)
{
    return sb_str(&st->sql);
}

int pgsql_stmt_nparams(const struct pgsql_stmt *st)
{
    return st->nparams;
}

/* expand_param - one template into out; 1: suppressed */
static int expand_param(const struct pgsql_stmt *st, const char *tpl, pgsql_expand_fn expand,
                        void *ctx, struct strbuf *out)
{
    for (const char *p = tpl; *p; p++) {
        size_t  n;

        if (*p != '%') {
            sb_putc(out, *p);
        } else if (p[1] == '%') {
            sb_putc(out, '%');
            p++;
        } else if ((n = st->scan(p + 1)) > 0) {
            if (expand(ctx, p + 1, n, out) != 0)
                return 1;
            p += n;
        } else {
            sb_putc(out, '%');          /* cannot happen: compile() checked */
        }
    }
    return 0;
}

bool pgsql_utf8_valid(const char *s, size_t len)
{
    /* PostgreSQL text cannot hold U+0000 */
    return memchr(s, '\0', len) == NULL && utf8_valid(s, len);
}

/* retryable - the statement failed in a way a fresh prepare/connection fixes */
static bool retryable(struct pgsql_conn *c, PGresult *r)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

    if (c->pg == NULL || PQstatus(c->pg) != CONNECTION_OK)
        return true;
    /* 26000: the prepared statement is gone (a pooler reset); 0A000: cached plan changed */
    return state && (strcmp(state, "26000") == 0 || strcmp(state, "0A000") == 0
                     || strncmp(state, "57P", 3) == 0 || strncmp(state, "08", 2) == 0);
}

enum pgsql_status pgsql_stmt_exec(struct pgsql_stmt *st, pgsql_expand_fn expand, void *ctx,
                                  PGresult **res, struct strbuf *err)
{
    struct pgsql_conn *c = st->conn;
    struct strbuf vals[PGSQL_MAX_PARAMS];
    const char *values[PGSQL_MAX_PARAMS];
    enum pgsql_status status = PGSQL_TEMPFAIL;
    PGresult *r = NULL;
    int     rc;

    *res = NULL;
    for (int i = 0; i < st->nparams; i++)
        sb_init(&vals[i]);
    for (int i = 0; i < st->nparams; i++) {
        if (expand_param(st, st->params[i].template, expand, ctx, &vals[i]) != 0
            || !pgsql_utf8_valid(vals[i].data ? vals[i].data : "", sb_len(&vals[i]))) {
            status = PGSQL_SUPPRESSED;
            goto out;
        }
        values[i] = sb_str(&vals[i]);
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        sb_reset(err);
        if (conn_open(c, err) < 0)
            goto out;
        if (st->prepared_gen != c->gen) {
            if (!PQsendPrepare(c->pg, st->name, sb_str(&st->sql), 0, NULL)) {
                sb_printf(err, "%s: ", pgsql_conn_describe(c));
                first_line(err, PQerrorMessage(c->pg));
                conn_drop(c);
                continue;
            }
            if ((rc = wait_result(c, &r, err)) < 0) {
                if (rc == -2)
                    goto out;
                continue;
            }
            if (PQresultStatus(r) != PGRES_COMMAND_OK) {
                bool    again = retryable(c, r);

                result_error(c, r, err);
                PQclear(r);
                r = NULL;
                if (again) {
                    conn_drop(c);
                    continue;
                }
                goto out;               /* a bad query: the administrator's to fix */
            }
            PQclear(r);
            r = NULL;
            st->prepared_gen = c->gen;
        }
        if (!PQsendQueryPrepared(c->pg, st->name, st->nparams, values, NULL, NULL, 0)) {
            sb_printf(err, "%s: ", pgsql_conn_describe(c));
            first_line(err, PQerrorMessage(c->pg));
            conn_drop(c);
            continue;
        }
        if ((rc = wait_result(c, &r, err)) < 0) {
            if (rc == -2)
                goto out;
            continue;
        }
        if (PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK) {
            *res = r;
            status = PGSQL_OK;
            goto out;
        }
        {
            const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);

            if (state && strncmp(state, "22", 2) == 0) {
                /* a data exception: the key is not a value of the column's type */
                PQclear(r);
                status = PGSQL_SUPPRESSED;
                goto out;
            }
        }
        result_error(c, r, err);
        if (retryable(c, r)) {
            PQclear(r);
            r = NULL;
            st->prepared_gen = 0;
            if (c->pg && PQstatus(c->pg) != CONNECTION_OK)
                conn_drop(c);
            continue;
        }
        PQclear(r);
        goto out;
    }
out:
    for (int i = 0; i < st->nparams; i++)
        sb_free(&vals[i]);
    return status;
}

int pgsql_exec_params(struct pgsql_conn *c, const char *sql, int n, const char *const *values,
                      PGresult **res, struct strbuf *err)
{
    PGresult *r = NULL;

    if (res)
        *res = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        sb_reset(err);
        if (conn_open(c, err) < 0)
            return PGSQL_TEMPFAIL;
        if (!PQsendQueryParams(c->pg, sql, n, NULL, values, NULL, NULL, 0)) {
            sb_printf(err, "%s: ", pgsql_conn_describe(c));
            first_line(err, PQerrorMessage(c->pg));
            conn_drop(c);
            /* a new connection would run the statement outside the caller's transaction */
            if (c->in_transaction)
                return PGSQL_TEMPFAIL;
            continue;
        }
        /* once sent, a write may have happened: never repeat it */
        if (wait_result(c, &r, err) < 0)
            return PGSQL_TEMPFAIL;
        c->in_transaction = PQtransactionStatus(c->pg) == PQTRANS_INTRANS
            || PQtransactionStatus(c->pg) == PQTRANS_INERROR;
        if (PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK) {
            if (res)
                *res = r;
            else
                PQclear(r);
            return PGSQL_OK;
        }
        result_error(c, r, err);
        if (c->pg == NULL || PQstatus(c->pg) != CONNECTION_OK) {
            PQclear(r);
            conn_drop(c);
            return PGSQL_TEMPFAIL;
        }
        PQclear(r);
        return -2;
    }
    return PGSQL_TEMPFAIL;
}

int pgsql_exec_script(struct pgsql_conn *c, const char *sql, struct strbuf *err)
{
    PGresult *r = NULL;
    int     rc;

    sb_reset(err);
    if (conn_open(c, err) < 0)
        return PGSQL_TEMPFAIL;
    if (!PQsendQuery(c->pg, sql)) {
        sb_printf(err, "%s: ", pgsql_conn_describe(c));
        first_line(err, PQerrorMessage(c->pg));
        conn_drop(c);
        return PGSQL_TEMPFAIL;
    }
    if (wait_result(c, &r, err) < 0)
        return PGSQL_TEMPFAIL;
    rc = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK
        ? PGSQL_OK : -2;
    if (rc != PGSQL_OK)
        result_error(c, r, err);
    PQclear(r);
    return rc;
}
