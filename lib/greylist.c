/*
 * greylist - the greylisting store and its decisions. See greylist.h for the
 * interface, the rules and the record format.
 *
 * Why a btree: the expiry sweep resumes from the last key it saw
 * (DB_SET_RANGE), which a hash file cannot do; and lookups are one per
 * request, so the btree's log n costs nothing that matters.
 *
 * Why no Berkeley DB environment: with transactions the store would survive
 * crashes intact, but it would need log files, checkpoints and recovery runs
 * for data that is worth little (losing it greylists some senders again).
 * Instead the file is verified when opened and rebuilt empty when it fails.
 *
 * Diagnostics: corruption and the rebuild are logged as warnings here (the
 * caller learns nothing: the store works again); other errors come back in
 * err with the file name and Berkeley DB's reason.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <db.h>

#include "greylist.h"
#include "log.h"
#include "mem.h"
#include "strbuf.h"

#define MAX_TIME        (1LL << 40)     /* far beyond any clock: refuse bigger numbers */
#define AWL_TOUCH_SECS  3600            /* refresh a whitelisted network's time at most hourly */
#define SEEN_TOUCH_SECS 3600            /* likewise a passed triplet's last-seen time */

struct greylist {
    DB     *db;                         /* NULL after a failed rebuild: every call retries */
    char   *path;
    int     lock_fd;
    bool    dirty;                      /* changes not yet synced */
    struct greylist_settings set;
    struct strbuf resume;               /* expiry sweep: next key to visit ("" = start) */
};

/* Berkeley DB's detail for the last error, for our messages. */
static char gl_last_error[256];

/* gl_errcall - keep Berkeley DB's message instead of letting it print */
static void gl_errcall(const DB_ENV *env, const char *prefix, const char *msg)
{
    (void) env;
    (void) prefix;
    snprintf(gl_last_error, sizeof(gl_last_error), "%s", msg ? msg : "");
}

/* gl_reason - Berkeley DB's error text plus its detail */
static void gl_reason(struct strbuf *out, int ret)
{
    const char *text = db_strerror(ret);

    sb_puts(out, text);
    if (gl_last_error[0] && strstr(gl_last_error, text) == NULL)
        sb_printf(out, " (%s)", gl_last_error);
}

/* is_corruption - an error that says the file is damaged, not that we may not use it */
static bool is_corruption(int ret)
{
    return ret == EINVAL || ret == DB_RUNRECOVERY || ret == DB_VERIFY_BAD
        || ret == DB_PAGE_NOTFOUND || ret == DB_SECONDARY_BAD || ret == EIO;
}

/* db_open_file - create the handle and open path as a btree (created if missing) */
static int db_open_file(const char *path, DB **dbp)
{
    DB     *db;
    int     ret, fd, flags;

    gl_last_error[0] = '\0';
    if ((ret = db_create(&db, NULL, 0)) != 0)
        return ret;
    db->set_errcall(db, gl_errcall);
    if ((ret = db->open(db, NULL, path, NULL, DB_BTREE, DB_CREATE, 0600)) != 0) {
        db->close(db, 0);
        return ret;
    }
    if (db->fd(db, &fd) == 0 && (flags = fcntl(fd, F_GETFD)) >= 0)
        (void) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    *dbp = db;
    return 0;
}

/* db_verify - 0 when path is missing or a sound Berkeley DB file, else the error */
static int db_verify(const char *path)
{
    DB     *db;
    struct stat st;
    int     ret;

    if (stat(path, &st) != 0)
        return errno == ENOENT ? 0 : errno;
    if (st.st_size == 0)
        return DB_VERIFY_BAD;           /* a crash between create and first write */
    gl_last_error[0] = '\0';
    if ((ret = db_create(&db, NULL, 0)) != 0)
        return ret;
    db->set_errcall(db, gl_errcall);
    /* DB->verify destroys the handle whatever happens */
    return db->verify(db, path, NULL, NULL, 0);
}

/* set_aside - rename a damaged store to PATH.corrupt (replacing an older one) */
static void set_aside(const char *path, int ret, const char *when)
{
    struct strbuf aside = STRBUF_INIT, why = STRBUF_INIT;

    gl_reason(&why, ret);
    sb_printf(&aside, "%s.corrupt", path);
    if (rename(path, sb_str(&aside)) == 0)
        msg_warn("greylist store %s is damaged (%s, %s): moved to %s, starting with an empty store",
                 path, sb_str(&why), when, sb_str(&aside));
    else if (errno != ENOENT && unlink(path) != 0)
        msg_warn("greylist store %s is damaged (%s, %s) and cannot be moved or removed: %m",
                 path, sb_str(&why), when);
    else
        msg_warn("greylist store %s is damaged (%s, %s): starting with an empty store",
                 path, sb_str(&why), when);
    sb_free(&aside);
    sb_free(&why);
}

/* open_store - verify, set aside if damaged, open; -1 with err */
static int open_store(struct greylist *gl, struct strbuf *err)
{
    int     ret = db_verify(gl->path);

    if (ret != 0) {
        if (ret == EACCES || ret == EPERM) {
            sb_printf(err, "greylist store %s: %s", gl->path, strerror(ret));
            return -1;
        }
        set_aside(gl->path, ret, "found at start-up");
    }
    if ((ret = db_open_file(gl->path, &gl->db)) != 0 && is_corruption(ret)) {
        set_aside(gl->path, ret, "found at open");
        ret = db_open_file(gl->path, &gl->db);
    }
    if (ret != 0) {
        gl->db = NULL;
        sb_printf(err, "greylist store %s: ", gl->path);
        gl_reason(err, ret);
        return -1;
    }
    gl->dirty = false;
    sb_reset(&gl->resume);
    return 0;
}

/* store_failed - the store failed in use: rebuild it empty if damaged; always -1 with err */
static int store_failed(struct greylist *gl, int ret, const char *op, struct strbuf *err)
{
    struct strbuf ignored = STRBUF_INIT;

    sb_printf(err, "greylist store %s: %s: ", gl->path, op);
    gl_reason(err, ret);
    if (is_corruption(ret)) {
        gl->db->close(gl->db, DB_NOSYNC);       /* do not write damaged pages back */
        gl->db = NULL;
        set_aside(gl->path, ret, op);
        if (open_store(gl, &ignored) < 0)
            msg_warn("%s", sb_str(&ignored));
    }
    sb_free(&ignored);
    return -1;
}

/* clamp - keep a setting within 0..MAX_TIME so that sums of them cannot overflow */
static void clamp(long long *v)
{
    if (*v < 0)
        *v = 0;
    if (*v > MAX_TIME)
        *v = MAX_TIME;
}

struct greylist *greylist_open(const char *path, const struct greylist_settings *settings,
                               bool *busy, struct strbuf *err)
{
    struct greylist *gl;
    struct strbuf lock = STRBUF_INIT;
    int     fd;

    *busy = false;
    sb_printf(&lock, "%s.lock", path);
    fd = open(sb_str(&lock), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        sb_printf(err, "open %s: %s", sb_str(&lock), strerror(errno));
        sb_free(&lock);
        return NULL;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            *busy = true;
        sb_printf(err, "lock %s: %s", sb_str(&lock),
                  errno == EWOULDBLOCK ? "another process uses this greylist store" : strerror(errno));
        close(fd);
        sb_free(&lock);
        return NULL;
    }
    sb_free(&lock);
    gl = xcalloc(1, sizeof(*gl));
    gl->path = xstrdup(path);
    gl->lock_fd = fd;
    gl->set = *settings;
    clamp(&gl->set.delay);
    clamp(&gl->set.max_age);
    clamp(&gl->set.retry_window);
    clamp(&gl->set.awl_clients);
    sb_init(&gl->resume);
    if (open_store(gl, err) < 0) {
        greylist_close(gl);
        return NULL;
    }
    return gl;
}

void greylist_close(struct greylist *gl)
{
    if (gl == NULL)
        return;
    if (gl->db != NULL) {
        int     ret = gl->db->close(gl->db, 0);

        if (ret != 0)
            msg_warn("greylist store %s: close: %s", gl->path, db_strerror(ret));
    }
    close(gl->lock_fd);
    free(gl->path);
    sb_free(&gl->resume);
    free(gl);
}

int greylist_sync(struct greylist *gl, struct strbuf *err)
{
    int     ret;

    if (gl->db == NULL || !gl->dirty)
        return 0;
    if ((ret = gl->db->sync(gl->db, 0)) != 0)
        return store_failed(gl, ret, "sync", err);
    gl->dirty = false;
    return 0;
}

/* parse_numbers - exactly n space-separated decimal numbers in 0..MAX_TIME; -1 otherwise */
static int parse_numbers(const char *data, size_t len, long long *out, int n)
{
    size_t  i = 0;

    for (int k = 0; k < n; k++) {
        long long v = 0;
        size_t  start;

        if (k > 0) {
            if (i >= len || data[i] != ' ')
                return -1;
            i++;
        }
        start = i;
        while (i < len && data[i] >= '0' && data[i] <= '9') {
            v = v * 10 + (data[i] - '0');
            if (v > MAX_TIME)
                return -1;
            i++;
        }
        if (i == start)
            return -1;
        out[k] = v;
    }
    return i == len ? 0 : -1;
}

/* get_record - n numbers stored under key: 1 found, 0 absent (or unreadable), -1 store error */
static int get_record(struct greylist *gl, const struct strbuf *key, long long *out, int n,
                      struct strbuf *err)
{
    DBT     k, v;
    int     ret;

    memset(&k, 0, sizeof(k));
    memset(&v, 0, sizeof(v));
    k.data = key->data;
    k.size = (u_int32_t) sb_len(key);
    ret = gl->db->get(gl->db, NULL, &k, &v, 0);
    if (ret == DB_NOTFOUND)
        return 0;
    if (ret != 0)
        return store_failed(gl, ret, "read", err);
    if (parse_numbers(v.data, v.size, out, n) < 0) {
        msg_warn("greylist store %s: ignoring a malformed record", gl->path);
        return 0;
    }
    return 1;
}

/* put_record - store n numbers under key; -1 with err */
static int put_record(struct greylist *gl, const struct strbuf *key, const long long *in, int n,
                      struct strbuf *err)
{
    struct strbuf val = STRBUF_INIT;
    DBT     k, v;
    int     ret;

    for (int i = 0; i < n; i++)
        sb_printf(&val, i ? " %lld" : "%lld", in[i]);
    memset(&k, 0, sizeof(k));
    memset(&v, 0, sizeof(v));
    k.data = key->data;
    k.size = (u_int32_t) sb_len(key);
    v.data = val.data;
    v.size = (u_int32_t) sb_len(&val);
    ret = gl->db->put(gl->db, NULL, &k, &v, 0);
    sb_free(&val);
    if (ret != 0)
        return store_failed(gl, ret, "write", err);
    gl->dirty = true;
    return 0;
}

int greylist_client_net(const char *address, int ipv4_prefix, int ipv6_prefix, struct strbuf *out)
{
    unsigned char a[16];
    char    text[INET6_ADDRSTRLEN];
    int     family, bits, bytes;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (strlen(address) >= INET6_ADDRSTRLEN)
        return -1;
    if (inet_pton(AF_INET, address, a) == 1) {
        family = AF_INET;
    } else if (inet_pton(AF_INET6, address, a) == 1) {
        family = AF_INET6;
        if (memcmp(a, mapped, sizeof(mapped)) == 0) {   /* ::ffff:192.0.2.7 is an IPv4 client */
            memmove(a, a + 12, 4);
            family = AF_INET;
        }
    } else {
        return -1;
    }
    bits = family == AF_INET ? ipv4_prefix : ipv6_prefix;
    bytes = family == AF_INET ? 4 : 16;
    if (bits < 0)
        bits = 0;
    if (bits > bytes * 8)
        bits = bytes * 8;
    for (int i = 0; i < bytes; i++) {
        int     keep = bits - i * 8;

        if (keep <= 0)
            a[i] = 0;
        else if (keep < 8)
            a[i] &= (unsigned char) (0xff << (8 - keep));
    }
    if (inet_ntop(family, a, text, sizeof(text)) == NULL)
        return -1;
    sb_reset(out);
    sb_printf(out, "%s/%d", text, bits);
    return 0;
}

/* is_word - a character of a Perl \w word (ASCII) */
static bool is_word(int c)
{
    return isalnum(c) || c == '_';
}

/* unwrap_srs - "srs0=hash=tt=domain=local" gives domain and local; false if not SRS */
static bool unwrap_srs(const char *local, struct strbuf *user, struct strbuf *domain)
{
    const char *p, *f[3];

    if (strncmp(local, "srs0", 4) == 0 && strchr("=+-", local[4]) && local[4]) {
        p = local + 5;
    } else if (strncmp(local, "srs1", 4) == 0 && strchr("=+-", local[4]) && local[4]) {
        /* SRS1=HHH=forwarder==HHH=TT=domain=local: the SRS0 part follows "==" */
        p = strstr(local + 5, "==");
        if (p == NULL)
            return false;
        p += 2;
    } else {
        return false;
    }
    /* hash, timestamp, domain, then the rest is the original local part */
    for (int i = 0; i < 3; i++) {
        f[i] = p;
        p = strchr(p, '=');
        if (p == NULL)
            return false;
        p++;
    }
    if (*p == '\0' || p - 1 == f[2])    /* empty local part or empty domain */
        return false;
    sb_reset(domain);
    sb_append(domain, f[2], (size_t) (p - 1 - f[2]));
    sb_set(user, p);
    return true;
}

/* unwrap_batv - "prvs=tag=local", "msprvs1=tag=local", "btv1==tag==local" give local */
static const char *unwrap_batv(const char *local)
{
    const char *p = NULL;

    if (strncmp(local, "prvs=", 5) == 0)
        p = strchr(local + 5, '=');
    else if (strncmp(local, "msprvs1=", 8) == 0)
        p = strchr(local + 8, '=');
    else if (strncmp(local, "btv1==", 6) == 0 && (p = strstr(local + 6, "==")) != NULL)
        p++;
    if (p == NULL || p[1] == '\0')
        return local;
    return p + 1;
}

void greylist_sender_key(const char *sender, struct strbuf *out)
{
    struct strbuf lower = STRBUF_INIT, user = STRBUF_INIT, domain = STRBUF_INIT, tmp = STRBUF_INIT;
    const char *at, *local;
    size_t  i, n;

    sb_set(&lower, sender);
    sb_lowercase(&lower);
    sb_reset(out);
    at = strrchr(sb_str(&lower), '@');
    if (at == NULL) {
        sb_puts(out, sb_str(&lower));
        goto done;
    }
    sb_append(&user, sb_str(&lower), (size_t) (at - sb_str(&lower)));
    sb_set(&domain, at + 1);
    local = unwrap_batv(sb_str(&user));
    if (local != sb_str(&user)) {
        char   *copy = xstrdup(local);

        sb_set(&user, copy);
        free(copy);
    }
    if (unwrap_srs(sb_str(&user), &tmp, &domain))
        sb_set(&user, sb_str(&tmp));
    /* the extension: "user+list-123" -> "user" */
    if ((at = strchr(sb_str(&user), '+')) != NULL)
        sb_truncate(&user, (size_t) (at - sb_str(&user)));
    /* numbers standing alone (VERP ids) -> "#", so that every bounce is one triplet */
    n = sb_len(&user);
    for (i = 0; i < n;) {
        const char *u = sb_str(&user);

        if (isdigit((unsigned char) u[i]) && (i == 0 || !is_word((unsigned char) u[i - 1]))) {
            size_t  j = i;

            while (j < n && isdigit((unsigned char) u[j]))
                j++;
            if (j == n || !is_word((unsigned char) u[j])) {
                sb_putc(out, '#');
                i = j;
                continue;
            }
            sb_append(out, u + i, j - i);       /* digits glued to letters: kept */
            i = j;
            continue;
        }
        sb_putc(out, u[i]);
        i++;
    }
    sb_printf(out, "@%s", sb_str(&domain));
done:
    sb_free(&lower);
    sb_free(&user);
    sb_free(&domain);
    sb_free(&tmp);
}

/* ensure_open - reopen after an earlier failed rebuild; -1 with err */
static int ensure_open(struct greylist *gl, struct strbuf *err)
{
    if (gl->db != NULL)
        return 0;
    return open_store(gl, err);
}

int greylist_check(struct greylist *gl, const char *client_address, const char *sender,
                   const char *recipient, long long now, struct greylist_result *res,
                   struct strbuf *err)
{
    struct strbuf net = STRBUF_INIT, key = STRBUF_INIT, awl = STRBUF_INIT, tmp = STRBUF_INIT;
    long long t[3], c[2];
    long long elapsed;
    int     rc = -1, found;

    memset(res, 0, sizeof(*res));
    if (greylist_client_net(client_address, gl->set.ipv4_prefix, gl->set.ipv6_prefix, &net) < 0) {
        sb_printf(err, "client address \"%.64s\" is not an IP address", client_address);
        goto out;
    }
    if (ensure_open(gl, err) < 0)
        goto out;
    if (now < 0 || now > MAX_TIME) {
        sb_printf(err, "clock reads %lld", now);
        goto out;
    }

    /* An auto-whitelisted network passes without looking at the triplet. */
    sb_printf(&awl, "c:%s", sb_str(&net));
    if ((found = get_record(gl, &awl, c, 2, err)) < 0)
        goto out;
    if (!found || now - c[1] > gl->set.max_age || c[1] > now + gl->set.max_age)
        c[0] = c[1] = 0;                /* forgotten, as the expiry sweep would */
    res->awl_count = c[0];
    if (gl->set.awl_clients > 0 && c[0] >= gl->set.awl_clients) {
        if (now - c[1] >= AWL_TOUCH_SECS || c[1] > now) {
            c[1] = now;
            if (put_record(gl, &awl, c, 2, err) < 0)
                goto out;
        }
        res->verdict = GREYLIST_PASS_AWL;
        rc = 0;
        goto out;
    }

    greylist_sender_key(sender, &tmp);
    sb_printf(&key, "t:%s/%s/", sb_str(&net), sb_str(&tmp));
    sb_set(&tmp, recipient);
    sb_lowercase(&tmp);
    sb_puts(&key, sb_str(&tmp));
    if ((found = get_record(gl, &key, t, 3, err)) < 0)
        goto out;
    /* forgotten, never seen, or stamped in the future (the clock went back): start now */
    if (!found || now - t[1] > gl->set.max_age || t[0] > now || t[1] > now || t[2] > 1) {
        t[0] = t[1] = now;
        t[2] = 0;
        found = 0;
    }
    if (t[2] == 1) {
        res->verdict = GREYLIST_PASS;
        if (now - t[1] >= SEEN_TOUCH_SECS) {
            t[1] = now;
            if (put_record(gl, &key, t, 3, err) < 0)
                goto out;
        }
        rc = 0;
        goto out;
    }
    elapsed = now - t[0];
    if (elapsed > gl->set.delay + gl->set.retry_window) {
        t[0] = now;                     /* came back too late: wait again */
        elapsed = 0;
        found = 0;
    }
    if (elapsed < gl->set.delay) {
        res->verdict = GREYLIST_DEFER;
        res->seconds = gl->set.delay - elapsed;
        t[1] = now;
        if (!found && put_record(gl, &key, t, 3, err) < 0)
            goto out;
        rc = 0;
        goto out;
    }
    /* The retry we waited for. */
    res->verdict = GREYLIST_PASS_DELAYED;
    res->seconds = elapsed;
    t[1] = now;
    t[2] = 1;
    if (put_record(gl, &key, t, 3, err) < 0)
        goto out;
    if (gl->set.awl_clients > 0) {
        c[0] = c[0] < MAX_TIME ? c[0] + 1 : c[0];
        c[1] = now;
        res->awl_count = c[0];
        if (put_record(gl, &awl, c, 2, err) < 0)
            goto out;
    }
    rc = 0;
out:
    sb_free(&net);
    sb_free(&key);
    sb_free(&awl);
    sb_free(&tmp);
    return rc;
}

/* is_stale - should the record key=value be removed at time now? */
static bool is_stale(const struct greylist *gl, const DBT *k, const DBT *v, long long now)
{
    long long n[3];
    const char *key = k->data;

    if (k->size >= 2 && key[0] == 't' && key[1] == ':') {
        if (parse_numbers(v->data, v->size, n, 3) < 0 || n[2] > 1)
            return true;
        if (n[1] > now + gl->set.max_age)       /* from a clock far ahead: never trust it */
            return true;
        if (now - n[1] > gl->set.max_age)
            return true;
        return n[2] == 0 && now - n[0] > gl->set.delay + gl->set.retry_window;
    }
    if (k->size >= 2 && key[0] == 'c' && key[1] == ':') {
        if (parse_numbers(v->data, v->size, n, 2) < 0)
            return true;
        return n[1] > now + gl->set.max_age || now - n[1] > gl->set.max_age;
    }
    return true;                        /* not ours */
}

int greylist_expire(struct greylist *gl, long long now, unsigned max_visit, unsigned *removed,
                    struct strbuf *err)
{
    DBC    *cur;
    DBT     k, v;
    int     ret, rc = 0;
    unsigned visited = 0;

    *removed = 0;
    if (ensure_open(gl, err) < 0)
        return -1;
    if ((ret = gl->db->cursor(gl->db, NULL, &cur, 0)) != 0)
        return store_failed(gl, ret, "cursor", err);
    memset(&k, 0, sizeof(k));
    memset(&v, 0, sizeof(v));
    if (sb_len(&gl->resume) > 0) {
        k.data = gl->resume.data;
        k.size = (u_int32_t) sb_len(&gl->resume);
        ret = cur->get(cur, &k, &v, DB_SET_RANGE);
    } else {
        ret = cur->get(cur, &k, &v, DB_FIRST);
    }
    while (ret == 0 && visited < max_visit) {
        visited++;
        if (is_stale(gl, &k, &v, now)) {
            if ((ret = cur->del(cur, 0)) != 0)
                break;
            gl->dirty = true;
            (*removed)++;
        }
        memset(&k, 0, sizeof(k));
        memset(&v, 0, sizeof(v));
        ret = cur->get(cur, &k, &v, DB_NEXT);
    }
    if (ret == 0) {
        /* stopped at a record not yet visited: the next call starts there */
        sb_reset(&gl->resume);
        sb_append(&gl->resume, k.data, k.size);
    } else if (ret == DB_NOTFOUND) {
        sb_reset(&gl->resume);
        rc = 1;
    }
    cur->close(cur);
    if (ret != 0 && ret != DB_NOTFOUND)
        return store_failed(gl, ret, "expire", err);
    return rc;
}

long greylist_count(struct greylist *gl)
{
    DBC    *cur;
    DBT     k, v;
    long    n = 0;

    if (gl->db == NULL || gl->db->cursor(gl->db, NULL, &cur, 0) != 0)
        return -1;
    memset(&k, 0, sizeof(k));
    memset(&v, 0, sizeof(v));
    while (cur->get(cur, &k, &v, DB_NEXT) == 0)
        n++;
    cur->close(cur);
    return n;
}
