/*
 * master_listen - open the listening sockets of master.cf's services.
 *
 * Interface (master.h):
 *   master_listen_open(servs, n, old, nold, err)
 *     gives each service its sockets. An inet service listens on its host
 *     (every address it resolves to) or else on each address of
 *     inet_interfaces ("all": 0.0.0.0 and ::, "loopback-only": 127.0.0.1
 *     and ::1, or a list), limited by inet_protocols. A unix service listens
 *     on $queue_directory/<socket_path> (and any "$param/path" extras beneath
 *     that directory): public sockets mode 0666, private ones 0600 and, when
 *     master is root, owned by mail_owner (extras: by their directory's owner).
 *     Sockets of old whose endpoint key is unchanged are moved over, not
 *     re-bound, so connections waiting in their backlog survive a reload.
 *     On failure nothing of old is lost (what was moved goes back).
 *   master_listen_retry(servs, n)
 *     after the old processes were told to stop: binds the addresses that
 *     were in use by sockets of the old configuration (same port, other
 *     address), retrying for MASTER_RETRY_SECONDS while they let go.
 *   master_listen_close(servs, n)
 *
 * Every socket is non-blocking and close-on-exec; the spawn code clears that
 * only in the child, for the sockets the child receives.
 *
 * Diagnostics: "service NAME (master.cf:LINE): bind ADDR: reason" in err;
 * a warning when IPv6 is implied by "all" but not available.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "log.h"
#include "mem.h"
#include "privsep.h"
#include "strbuf.h"

#include "master.h"

/* Marker for an address in use, to be bound again once the old sockets are closed. */
#define FD_RETRY (-2)

/* One address to listen on, before it is bound. */
struct listen_spec {
    enum master_service_type type;
    struct sockaddr_storage ss;         /* inet */
    socklen_t sslen;
    char   *path;                       /* unix: absolute socket path */
    char   *owner_dir;                  /* unix: private socket owned as this dir is; NULL: mail_owner */
    bool    optional;                   /* IPv6 implied by "all": skip if unavailable */
    char   *key;
};

struct spec_list {
    struct listen_spec *v;
    size_t  n;
};

/* spec_add - append a spec (takes key and path) */
static void spec_add(struct spec_list *list, const struct listen_spec *spec)
{
    for (size_t i = 0; i < list->n; i++)
        if (strcmp(list->v[i].key, spec->key) == 0) {   /* "localhost" may repeat 127.0.0.1 */
            free(spec->key);
            free(spec->path);
            free(spec->owner_dir);
            return;
        }
    list->v = xreallocarray(list->v, list->n + 1, sizeof(*list->v));
    list->v[list->n++] = *spec;
}

/* spec_dup - a heap copy, for an address bound later by master_listen_retry() */
static struct listen_spec *spec_dup(const struct listen_spec *spec)
{
    struct listen_spec *copy = xmalloc(sizeof(*copy));

    *copy = *spec;
    copy->key = xstrdup(spec->key);
    copy->path = spec->path ? xstrdup(spec->path) : NULL;
    copy->owner_dir = spec->owner_dir ? xstrdup(spec->owner_dir) : NULL;
    return copy;
}

/* spec_free - release a spec_dup() copy */
static void spec_free(struct listen_spec *spec)
{
    if (spec) {
        free(spec->key);
        free(spec->path);
        free(spec->owner_dir);
        free(spec);
    }
}

/* spec_list_free - release a spec list */
static void spec_list_free(struct spec_list *list)
{
    for (size_t i = 0; i < list->n; i++) {
        free(list->v[i].key);
        free(list->v[i].path);
        free(list->v[i].owner_dir);
    }
    free(list->v);
    list->v = NULL;
    list->n = 0;
}

/* where - "service NAME (master.cf:LINE)" for messages */
static void where(struct strbuf *err, const struct master_serv *serv)
{
    sb_printf(err, "service %s (%s:%d): ", serv->def->name, serv->mcf_path, serv->def->line);
}

/* param_where - "main.cf:LINE: " when name was set in main.cf, for messages */
static void param_where(struct strbuf *err, struct config *cfg, const char *name)
{
    int     line = config_line(cfg, name);

    if (line > 0)
        sb_printf(err, "%s:%d: ", config_path(cfg), line);
}

/* inet_key - the endpoint identity of a socket address */
static char *inet_key(const struct sockaddr *sa, socklen_t len)
{
    char    host[NI_MAXHOST];
    char    serv[NI_MAXSERV];
    struct strbuf sb = STRBUF_INIT;

    if (getnameinfo(sa, len, host, sizeof(host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        msg_panic("inet_key: getnameinfo failed for a numeric address");
    if (sa->sa_family == AF_INET6)
        sb_printf(&sb, "inet:[%s]:%s", host, serv);
    else
        sb_printf(&sb, "inet:%s:%s", host, serv);
    return sb_detach(&sb);
}

/* parse_protocols - inet_protocols: "all", "ipv4", "ipv6" or a list of the last two */
static int parse_protocols(struct config *cfg, bool *v4, bool *v6, struct strbuf *err)
{
    const char *value = config_str(cfg, "inet_protocols");
    char   *copy = xstrdup(value);
    char   *save = NULL;
    int     ret = 0;

    *v4 = *v6 = false;
    for (char *tok = strtok_r(copy, ", \t\r\n", &save); tok; tok = strtok_r(NULL, ", \t\r\n", &save)) {
        if (strcasecmp(tok, "all") == 0)
            *v4 = *v6 = true;
        else if (strcasecmp(tok, "ipv4") == 0)
            *v4 = true;
        else if (strcasecmp(tok, "ipv6") == 0)
            *v6 = true;
        else {
            param_where(err, cfg, "inet_protocols");
            sb_printf(err, "inet_protocols: unknown protocol \"%s\"; use all, ipv4 or ipv6", tok);
            ret = -1;
            break;
        }
    }
    if (ret == 0 && !*v4 && !*v6) {
        param_where(err, cfg, "inet_protocols");
        sb_puts(err, "inet_protocols is empty; use all, ipv4 or ipv6");
        ret = -1;
    }
    free(copy);
    return ret;
}

/* add_fixed - the any or loopback address of one family */
static void add_fixed(struct spec_list *list, int family, bool loopback, unsigned port, bool optional)
{
    struct listen_spec spec;

    memset(&spec, 0, sizeof(spec));
    spec.type = MASTER_INET;
    spec.optional = optional;
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *) &spec.ss;

        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        sin->sin_addr.s_addr = htonl(loopback ? INADDR_LOOPBACK : INADDR_ANY);
        spec.sslen = sizeof(*sin);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &spec.ss;

        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        sin6->sin6_addr = loopback ? in6addr_loopback : in6addr_any;
        spec.sslen = sizeof(*sin6);
    }
    spec.key = inet_key((struct sockaddr *) &spec.ss, spec.sslen);
    spec_add(list, &spec);
}

/* add_host - every address host resolves to, within the allowed protocols */
static int add_host(struct spec_list *list, const char *host, unsigned port,
                    bool v4, bool v6, struct strbuf *err)
{
    struct addrinfo hints, *res = NULL;
    char    portstr[16];
    char   *name;
    size_t  len = strlen(host);
    int     rc;
    size_t  before = list->n;

    /* "[::1]" is the usual way to write an IPv6 address next to a port. */
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']')
        name = xstrndup(host + 1, len - 2);
    else
        name = xstrdup(host);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = v4 && v6 ? AF_UNSPEC : v4 ? AF_INET : AF_INET6;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portstr, sizeof(portstr), "%u", port);
    rc = getaddrinfo(name, portstr, &hints, &res);
    if (rc != 0) {
        sb_printf(err, "cannot resolve listen address \"%s\": %s", name, gai_strerror(rc));
        free(name);
        return -1;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        struct listen_spec spec;

        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            || ai->ai_addrlen > sizeof(spec.ss))
            continue;
        memset(&spec, 0, sizeof(spec));
        spec.type = MASTER_INET;
        memcpy(&spec.ss, ai->ai_addr, ai->ai_addrlen);
        spec.sslen = ai->ai_addrlen;
        spec.key = inet_key(ai->ai_addr, ai->ai_addrlen);
        spec_add(list, &spec);
    }
    freeaddrinfo(res);
    if (list->n == before) {
        sb_printf(err, "listen address \"%s\" has no address of the protocols in inet_protocols", name);
        free(name);
        return -1;
    }
    free(name);
    return 0;
}

/* parse_port - master_cf gives the port as numeric text; check it anyway */
static int parse_port(const char *text, unsigned *port)
{
    char   *end;
    long    val;

    if (text == NULL || *text < '0' || *text > '9')
        return -1;
    errno = 0;
    val = strtol(text, &end, 10);
    if (errno || *end || val < 1 || val > 65535)
        return -1;
    *port = (unsigned) val;
    return 0;
}

/* plan_inet - the addresses an inet service listens on */
static int plan_inet(struct master_serv *serv, struct spec_list *list, struct strbuf *err)
{
    struct config *cfg = serv->cfg;
    const struct master_service *def = serv->def;
    unsigned port;
    bool    v4, v6;

    if (parse_port(def->port, &port) < 0) {
        where(err, serv);
        sb_printf(err, "bad port \"%s\"", def->port ? def->port : "");
        return -1;
    }
    if (parse_protocols(cfg, &v4, &v6, err) < 0)
        return -1;
    if (def->host != NULL && *def->host) {
        struct strbuf why = STRBUF_INIT;

        if (add_host(list, def->host, port, v4, v6, &why) < 0) {
            where(err, serv);
            sb_puts(err, sb_str(&why));
            sb_free(&why);
            return -1;
        }
        sb_free(&why);
        return 0;
    }

    const char *ifaces = config_str(cfg, "inet_interfaces");
    char   *copy = xstrdup(ifaces);
    char   *save = NULL;
    int     ret = 0;
    size_t  count = 0;

    for (char *tok = strtok_r(copy, ", \t\r\n", &save); tok; tok = strtok_r(NULL, ", \t\r\n", &save)) {
        count++;
        if (strcasecmp(tok, "all") == 0) {
            /* IPv6 is implied here, not asked for: a host without it still runs. */
            if (v4)
                add_fixed(list, AF_INET, false, port, false);
            if (v6)
                add_fixed(list, AF_INET6, false, port, v4);
        } else if (strcasecmp(tok, "loopback-only") == 0) {
            if (v4)
                add_fixed(list, AF_INET, true, port, false);
            if (v6)
                add_fixed(list, AF_INET6, true, port, v4);
        } else {
            struct strbuf why = STRBUF_INIT;

            if (add_host(list, tok, port, v4, v6, &why) < 0) {
                param_where(err, cfg, "inet_interfaces");
                sb_printf(err, "inet_interfaces: %s", sb_str(&why));
                sb_free(&why);
                ret = -1;
                break;
            }
            sb_free(&why);
        }
    }
    free(copy);
    if (ret == 0 && count == 0) {
        param_where(err, cfg, "inet_interfaces");
        sb_puts(err, "inet_interfaces is empty; use all, loopback-only or a list of addresses");
        ret = -1;
    }
    return ret;
}

/* plan_unix_path - one socket: dir/rel; owner_dir NULL means mail_owner owns it */
static int plan_unix_path(struct master_serv *serv, const char *dir, const char *rel,
                          const char *owner_dir, struct spec_list *list, struct strbuf *err)
{
    struct listen_spec spec;
    struct sockaddr_un sun;
    struct strbuf sb = STRBUF_INIT;

    /* The path must stay inside its directory, where the chrooted clients look. */
    if (rel == NULL || *rel == '\0' || *rel == '/' || strstr(rel, "..") != NULL) {
        where(err, serv);
        sb_printf(err, "bad socket path \"%s\"; use a name relative to queue_directory", rel ? rel : "");
        return -1;
    }
    if (dir == NULL || dir[0] != '/') {
        where(err, serv);
        sb_printf(err, "socket %s: the directory \"%s\" is not an absolute path", rel, dir ? dir : "");
        return -1;
    }
    sb_printf(&sb, "%s/%s", dir, rel);
    if (sb_len(&sb) >= sizeof(sun.sun_path)) {
        where(err, serv);
        sb_printf(err, "socket path %s is too long (at most %zu bytes)", sb_str(&sb),
                  sizeof(sun.sun_path) - 1);
        sb_free(&sb);
        return -1;
    }
    memset(&spec, 0, sizeof(spec));
    spec.type = MASTER_UNIX;
    spec.path = sb_detach(&sb);
    spec.owner_dir = owner_dir ? xstrdup(owner_dir) : NULL;
    sb_printf(&sb, "unix:%s", spec.path);
    spec.key = sb_detach(&sb);
    spec_add(list, &spec);
    return 0;
}

/* plan_unix - the socket paths of a unix service: its own, then "$param/path" extras */
static int plan_unix(struct master_serv *serv, struct spec_list *list, struct strbuf *err)
{
    const struct master_service *def = serv->def;

    if (plan_unix_path(serv, config_str(serv->cfg, "queue_directory"), def->socket_path, NULL,
                       list, err) < 0)
        return -1;
    for (size_t i = 0; i < def->nextra_sockets; i++) {
        const char *item = def->extra_sockets[i];           /* "$param/rel", checked by master_cf */
        const char *slash = strchr(item, '/');
        char   *param = xstrndup(item + 1, (size_t) (slash - item - 1));
        const char *dir = config_lookup(serv->cfg, param);
        int     rc;

        if (dir == NULL) {
            where(err, serv);
            sb_printf(err, "extra socket %s: unknown parameter $%s", item, param);
            free(param);
            return -1;
        }
        rc = plan_unix_path(serv, dir, slash + 1, dir, list, err);
        free(param);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* bind_inet - socket, bind and listen; -1 with err and errno */
static int bind_inet(const struct listen_spec *spec, struct strbuf *err)
{
    int     fd, on = 1, saved;

    fd = socket(spec->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        saved = errno;
        sb_printf(err, "socket for %s: %s", spec->key + 5, strerror(saved));
        errno = saved;
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0
        || (spec->ss.ss_family == AF_INET6
            && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) < 0)) {
        saved = errno;
        sb_printf(err, "setsockopt for %s: %s", spec->key + 5, strerror(saved));
        goto fail;
    }
    if (bind(fd, (const struct sockaddr *) &spec->ss, spec->sslen) < 0) {
        saved = errno;
        sb_printf(err, "bind %s: %s", spec->key + 5, strerror(saved));
        goto fail;
    }
    if (listen(fd, MASTER_LISTEN_BACKLOG) < 0) {
        saved = errno;
        sb_printf(err, "listen %s: %s", spec->key + 5, strerror(saved));
        goto fail;
    }
    return fd;

fail:
    close(fd);
    errno = saved;
    return -1;
}

/*
 * socket_owner - give a private socket to its clients' user: mail_owner in
 * the queue directory, else the owner of the directory it was placed in
 * (the mail base belongs to vmail_owner, whose imapd connects there)
 */
static int socket_owner(struct master_serv *serv, const struct listen_spec *spec, struct strbuf *err)
{
    uid_t   uid;
    gid_t   gid;
    int     saved;

    if (spec->owner_dir == NULL) {
        const char *owner = config_str(serv->cfg, "mail_owner");
        struct strbuf why = STRBUF_INIT;

        if (privsep_lookup_user(owner, &uid, &gid, &why) < 0) {
            sb_printf(err, "owner of %s: %s", spec->path, sb_str(&why));
            sb_free(&why);
            errno = ENOENT;
            return -1;
        }
        sb_free(&why);
    } else {
        struct stat st;

        if (stat(spec->owner_dir, &st) < 0) {
            saved = errno;
            sb_printf(err, "owner of %s: %s: %s", spec->path, spec->owner_dir, strerror(saved));
            errno = saved;
            return -1;
        }
        uid = st.st_uid;
        gid = st.st_gid;
    }
    if (lchown(spec->path, uid, gid) < 0) {
        saved = errno;
        sb_printf(err, "chown %s: %s", spec->path, strerror(saved));
        errno = saved;
        return -1;
    }
    return 0;
}

/* bind_unix - replace a stale socket file, bind with the right mode and owner */
static int bind_unix(struct master_serv *serv, const struct listen_spec *spec, struct strbuf *err)
{
    struct sockaddr_un sun;
    struct stat st;
    bool    private_ = serv->def->private_;
    mode_t  mode = private_ ? 0600 : 0666;
    mode_t  old_umask;
    int     fd, rc, saved;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, spec->path, strlen(spec->path) + 1);      /* length checked in plan_unix */

    if (lstat(spec->path, &st) == 0) {
        /* Never remove something that is not a socket: a typo must not delete a file. */
        if (!S_ISSOCK(st.st_mode)) {
            sb_printf(err, "%s exists and is not a socket; remove it or change master.cf", spec->path);
            errno = EEXIST;
            return -1;
        }
        if (unlink(spec->path) < 0) {
            saved = errno;
            sb_printf(err, "remove stale socket %s: %s", spec->path, strerror(saved));
            errno = saved;
            return -1;
        }
    } else {
        /* The parent (private/ or public/) is made if missing, traversable by the clients. */
        char   *dir = xstrdup(spec->path);
        char   *slash = strrchr(dir, '/');

        if (slash && slash != dir) {
            *slash = '\0';
            if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
                saved = errno;
                sb_printf(err, "create directory %s: %s", dir, strerror(saved));
                free(dir);
                errno = saved;
                return -1;
            }
        }
        free(dir);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        saved = errno;
        sb_printf(err, "socket for %s: %s", spec->path, strerror(saved));
        errno = saved;
        return -1;
    }
    /* The mode comes from the umask at bind time: no window with a wider mode. */
    old_umask = umask(0777 & ~mode);
    rc = bind(fd, (struct sockaddr *) &sun, sizeof(sun));
    saved = errno;
    umask(old_umask);
    if (rc < 0) {
        sb_printf(err, "bind %s: %s", spec->path, strerror(saved));
        goto fail;
    }
    if (private_ && privsep_is_root() && socket_owner(serv, spec, err) < 0) {
        saved = errno;
        goto fail_unlink;
    }
    if (listen(fd, MASTER_LISTEN_BACKLOG) < 0) {
        saved = errno;
        sb_printf(err, "listen %s: %s", spec->path, strerror(saved));
        goto fail_unlink;
    }
    return fd;

fail_unlink:
    unlink(spec->path);
fail:
    close(fd);
    errno = saved;
    return -1;
}

/* bind_spec - open one endpoint */
static int bind_spec(struct master_serv *serv, const struct listen_spec *spec, struct strbuf *err)
{
    return spec->type == MASTER_UNIX ? bind_unix(serv, spec, err) : bind_inet(spec, err);
}

/* take_old - move the socket with this key out of old; -1 if there is none */
static int take_old(struct master_serv *old, size_t nold, const char *key,
                    struct master_listener **from)
{
    for (size_t i = 0; i < nold; i++)
        for (size_t j = 0; j < old[i].nlisteners; j++) {
            struct master_listener *l = &old[i].listeners[j];

            if (l->fd >= 0 && strcmp(l->key, key) == 0) {
                int     fd = l->fd;

                l->fd = -1;
                *from = l;
                return fd;
            }
        }
    return -1;
}

/* port_of - the port part of an inet key ("inet:[::]:25" -> "25") */
static const char *port_of(const char *key)
{
    const char *colon = strrchr(key, ':');

    return colon ? colon + 1 : "";
}

/* old_port_left - an old inet socket that nobody took over listens on key's port */
static bool old_port_left(struct master_serv *old, size_t nold, const char *key)
{
    for (size_t i = 0; i < nold; i++)
        for (size_t j = 0; j < old[i].nlisteners; j++) {
            const struct master_listener *l = &old[i].listeners[j];

            if (l->fd >= 0 && strncmp(l->key, "inet:", 5) == 0
                && strcmp(port_of(l->key), port_of(key)) == 0)
                return true;
        }
    return false;
}

/* Bookkeeping so that a failed reload gives the old sockets back. */
struct moved {
    struct master_listener *from;       /* NULL: bound here */
    struct master_serv *serv;
    size_t  index;
    const struct listen_spec *spec;
};

/* rollback - undo master_listen_open: moved sockets go back, new ones close */
static void rollback(struct master_serv *servs, size_t nservs, struct moved *log, size_t nlog)
{
    for (size_t i = 0; i < nlog; i++) {
        struct master_listener *l = &log[i].serv->listeners[log[i].index];

        if (log[i].from) {
            log[i].from->fd = l->fd;
        } else if (l->fd >= 0) {
            close(l->fd);
            if (log[i].spec->type == MASTER_UNIX)
                unlink(log[i].spec->path);
        }
        l->fd = -1;
    }
    master_listen_close(servs, nservs);
}

int master_listen_open(struct master_serv *servs, size_t nservs,
                       struct master_serv *old, size_t nold, struct strbuf *err)
{
    struct moved *log = NULL;
    size_t  nlog = 0;
    struct spec_list *plans = xcalloc(nservs ? nservs : 1, sizeof(*plans));
    bool    retry_needed = false;
    int     ret = -1;

    for (size_t i = 0; i < nservs; i++) {
        int     rc = servs[i].def->type == MASTER_UNIX ? plan_unix(&servs[i], &plans[i], err)
            : plan_inet(&servs[i], &plans[i], err);

        if (rc < 0)
            goto out;
        if (plans[i].n > MASTER_MAX_LISTEN_FDS) {
            where(err, &servs[i]);
            sb_printf(err, "%zu addresses to listen on; at most %d per service",
                      plans[i].n, MASTER_MAX_LISTEN_FDS);
            goto out;
        }
        servs[i].listeners = xcalloc(plans[i].n ? plans[i].n : 1, sizeof(struct master_listener));
        servs[i].nlisteners = 0;
    }

    /*
     * First pass: reuse, else bind. An address that is in use may be held by
     * an old socket this configuration no longer wants (say, 0.0.0.0:25 when
     * the new one asks for 127.0.0.1:25); those are tried again below, once
     * the old sockets are gone.
     */
    for (size_t i = 0; i < nservs; i++) {
        for (size_t j = 0; j < plans[i].n; j++) {
            const struct listen_spec *spec = &plans[i].v[j];
            struct master_listener *from = NULL;
            struct strbuf why = STRBUF_INIT;
            int     fd = take_old(old, nold, spec->key, &from);

            if (fd < 0) {
                fd = bind_spec(&servs[i], spec, &why);
                if (fd < 0 && errno == EADDRINUSE && old != NULL) {
                    retry_needed = true;
                    fd = FD_RETRY;
                } else if (fd < 0 && spec->optional
                           && (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL)) {
                    msg_warn("service %s: IPv6 is not available (%s); not listening on %s",
                             servs[i].def->name, sb_str(&why), spec->key + 5);
                    sb_free(&why);
                    continue;
                } else if (fd < 0) {
                    where(err, &servs[i]);
                    sb_puts(err, sb_str(&why));
                    sb_free(&why);
                    goto out;
                }
            }
            sb_free(&why);
            struct master_listener *l = &servs[i].listeners[servs[i].nlisteners];

            l->fd = fd;
            l->key = xstrdup(spec->key);
            l->retry = fd == FD_RETRY ? spec_dup(spec) : NULL;
            log = xreallocarray(log, nlog + 1, sizeof(*log));
            log[nlog].from = from;
            log[nlog].serv = &servs[i];
            log[nlog].index = servs[i].nlisteners++;
            log[nlog].spec = spec;
            nlog++;
        }
    }

    /*
     * Past this point no rollback: the old sockets that are left close. The
     * addresses they held are bound in master_listen_retry(), once the old
     * processes, which share those sockets, have let go of them.
     */
    for (size_t k = 0; retry_needed && k < nlog; k++) {
        struct master_listener *l = &log[k].serv->listeners[log[k].index];

        /* Only an old socket on that port can be in the way; else it is a real conflict. */
        if (l->fd == FD_RETRY && !old_port_left(old, nold, l->key)) {
            where(err, log[k].serv);
            sb_printf(err, "bind %s: %s", l->key + 5, strerror(EADDRINUSE));
            goto out;
        }
    }
    if (retry_needed)
        master_listen_close(old, nold);
    ret = 0;

out:
    if (ret < 0)
        rollback(servs, nservs, log, nlog);
    for (size_t i = 0; i < nservs; i++)
        spec_list_free(&plans[i]);
    free(plans);
    free(log);
    return ret;
}

void master_listen_retry(struct master_serv *servs, size_t nservs)
{
    struct timespec start, now, pause = {0, 50 * 1000 * 1000};
    bool    pending = true;

    clock_gettime(CLOCK_MONOTONIC, &start);
    while (pending) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        bool    last = now.tv_sec - start.tv_sec >= MASTER_RETRY_SECONDS;

        pending = false;
        for (size_t i = 0; i < nservs; i++)
            for (size_t j = 0; j < servs[i].nlisteners; j++) {
                struct master_listener *l = &servs[i].listeners[j];
                struct strbuf why = STRBUF_INIT;

                if (l->fd != FD_RETRY)
                    continue;
                l->fd = bind_spec(&servs[i], l->retry, &why);
                if (l->fd < 0 && errno == EADDRINUSE && !last) {
                    l->fd = FD_RETRY;
                    pending = true;
                } else if (l->fd < 0) {
                    msg_error("service %s (%s:%d): %s; the service runs without this address",
                              servs[i].def->name, servs[i].mcf_path, servs[i].def->line,
                              sb_str(&why));
                }
                sb_free(&why);
            }
        if (pending)
            nanosleep(&pause, NULL);
    }
    for (size_t i = 0; i < nservs; i++) {
        size_t  keep = 0;

        for (size_t j = 0; j < servs[i].nlisteners; j++) {
            struct master_listener *l = &servs[i].listeners[j];

            spec_free(l->retry);
            l->retry = NULL;
            if (l->fd < 0)
                free(l->key);
            else
                servs[i].listeners[keep++] = *l;
        }
        servs[i].nlisteners = keep;
    }
}

void master_listen_close(struct master_serv *servs, size_t nservs)
{
    for (size_t i = 0; i < nservs; i++) {
        for (size_t j = 0; j < servs[i].nlisteners; j++) {
            if (servs[i].listeners[j].fd >= 0)
                close(servs[i].listeners[j].fd);
            free(servs[i].listeners[j].key);
            spec_free(servs[i].listeners[j].retry);
        }
        free(servs[i].listeners);
        servs[i].listeners = NULL;
        servs[i].nlisteners = 0;
    }
}
