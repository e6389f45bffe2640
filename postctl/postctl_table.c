/*
 * postctl_table - locked, atomic edits of text tables. See postctl_table.h.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "address.h"
#include "config.h"
#include "directory.h"
#include "fsutil.h"
#include "map.h"
#include "mem.h"

#include "postctl_table.h"

#define TABLE_FILE_MAX (256 * 1024 * 1024)

int table_file_for(struct config *cfg, const char *param, struct strbuf *spec, struct strbuf *path,
                   struct strbuf *err)
{
    struct strlist items = STRLIST_INIT;
    int     rc = -1;

    strlist_split(&items, config_str(cfg, param));
    for (size_t i = 0; i < items.count; i++) {
        const char *item = items.items[i];

        if (strncmp(item, "hash:", 5) == 0 || strncmp(item, "btree:", 6) == 0) {
            sb_set(spec, item);
            sb_set(path, strchr(item, ':') + 1);
            rc = 0;
            break;
        }
    }
    if (rc < 0)
        sb_printf(err, "%s = %s has no hash: or btree: table that postctl can edit", param,
                  config_str(cfg, param));
    strlist_free(&items);
    return rc;
}

/* split_entry - key and value of one logical line; false for comments and blank lines */
static bool split_entry(const char *line, char separator, struct strbuf *key, struct strbuf *value)
{
    const char *p = line;
    size_t  klen;

    while (isspace((unsigned char) *p))
        p++;
    if (*p == '\0' || *p == '#')
        return false;
    klen = separator == ':' ? strcspn(p, ":") : strcspn(p, " \t");
    sb_reset(key);
    sb_append(key, p, klen);
    p += klen;
    if (separator == ':' && *p == ':')
        p++;
    while (separator != ':' && isspace((unsigned char) *p))
        p++;
    sb_set(value, p);
    return true;
}

/* find_entry - index of the line holding key, or -1 */
static long find_entry(const struct text_table *t, const char *key)
{
    struct strbuf k = STRBUF_INIT;
    struct strbuf v = STRBUF_INIT;
    long    found = -1;

    for (size_t i = 0; i < t->lines.count && found < 0; i++)
        if (split_entry(t->lines.items[i], t->separator, &k, &v) && strcasecmp(k.data, key) == 0)
            found = (long) i;
    sb_free(&k);
    sb_free(&v);
    return found;
}

int table_open(struct text_table *t, const char *path, char separator, struct strbuf *err)
{
    struct strbuf lock = STRBUF_INIT;
    struct strbuf text = STRBUF_INIT;
    struct strbuf readerr = STRBUF_INIT;

    memset(t, 0, sizeof(*t));
    t->path = xstrdup(path);
    t->separator = separator;
    sb_printf(&lock, "%s.lock", path);
    t->lock_fd = open(lock.data, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (t->lock_fd < 0 || flock(t->lock_fd, LOCK_EX) < 0) {
        sb_printf(err, "lock %s: %s", lock.data, strerror(errno));
        sb_free(&lock);
        table_close(t);
        return -1;
    }
    sb_free(&lock);
    if (fs_read_file(path, TABLE_FILE_MAX, &text, &readerr) < 0 && errno != ENOENT) {
        sb_puts(err, sb_str(&readerr));
        sb_free(&readerr);
        sb_free(&text);
        table_close(t);
        return -1;
    }
    /* Logical lines: a line starting with white space continues the one before. */
    struct strbuf logical = STRBUF_INIT;
    const char *p = sb_str(&text);

    while (*p) {
        size_t  len = strcspn(p, "\n");
        bool    continuation = (*p == ' ' || *p == '\t') && sb_len(&logical) > 0
            && separator != ':';

        if (!continuation && sb_len(&logical) > 0) {
            strlist_add(&t->lines, logical.data);
            sb_reset(&logical);
        }
        if (continuation)
            sb_putc(&logical, ' ');
        sb_append(&logical, continuation ? p + strspn(p, " \t") : p,
                  continuation ? len - strspn(p, " \t") : len);
        if (len == 0 && !continuation) {
            strlist_add(&t->lines, "");
            sb_reset(&logical);
        }
        p += len + (p[len] == '\n');
    }
    if (sb_len(&logical) > 0)
        strlist_add(&t->lines, logical.data);
    sb_free(&logical);
    sb_free(&text);
    sb_free(&readerr);
    return 0;
}

bool table_get(const struct text_table *t, const char *key, struct strbuf *value)
{
    long    i = find_entry(t, key);
    struct strbuf k = STRBUF_INIT;

    if (i >= 0)
        split_entry(t->lines.items[i], t->separator, &k, value);
    sb_free(&k);
    return i >= 0;
}

void table_set(struct text_table *t, const char *key, const char *value)
{
    struct strbuf line = STRBUF_INIT;
    long    i = find_entry(t, key);

    sb_printf(&line, "%s%s%s", key, t->separator == ':' ? ":" : " ", value);
    if (i >= 0) {
        free(t->lines.items[i]);
        t->lines.items[i] = sb_detach(&line);
    } else {
        strlist_add(&t->lines, line.data);
    }
    sb_free(&line);
}

bool table_remove(struct text_table *t, const char *key)
{
    long    i = find_entry(t, key);

    if (i < 0)
        return false;
    free(t->lines.items[i]);
    memmove(&t->lines.items[i], &t->lines.items[i + 1], (t->lines.count - (size_t) i - 1) * sizeof(char *));
    t->lines.count--;
    return true;
}

bool table_next(const struct text_table *t, size_t *pos, struct strbuf *key, struct strbuf *value)
{
    while (*pos < t->lines.count) {
        if (split_entry(t->lines.items[(*pos)++], t->separator, key, value))
            return true;
    }
    return false;
}

int table_commit(struct text_table *t, const char *spec, struct strbuf *err)
{
    struct strbuf text = STRBUF_INIT;
    struct strbuf warnings = STRBUF_INIT;
    struct stat st;
    mode_t  mode = 0644;
    uid_t   uid = (uid_t) -1;
    gid_t   gid = (gid_t) -1;
    int     rc = -1;

    if (stat(t->path, &st) == 0) {
        mode = st.st_mode & 07777;
        uid = st.st_uid;
        gid = st.st_gid;
    }
    for (size_t i = 0; i < t->lines.count; i++)
        sb_printf(&text, "%s\n", t->lines.items[i]);
    if (fs_write_atomic(t->path, sb_str(&text), sb_len(&text), mode, uid, gid, err) == 0
        && (spec == NULL || map_compile(spec, &warnings, err) == 0))
        rc = 0;
    sb_free(&text);
    sb_free(&warnings);
    table_close(t);
    return rc;
}

void table_close(struct text_table *t)
{
    if (t->lock_fd > 0)
        close(t->lock_fd);             /* releases the lock */
    t->lock_fd = -1;
    strlist_free(&t->lines);
    free(t->path);
    t->path = NULL;
}

int admin_domain(const char *text, struct strbuf *out, struct strbuf *err)
{
    size_t  len = strlen(text);
    size_t  label = 0;

    if (len > 0 && text[len - 1] == '.')
        len--;
    if (len == 0 || len > 253) {
        sb_printf(err, "'%s' is not a domain name", text);
        return -1;
    }
    sb_reset(out);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) text[i];

        if (c == '.') {
            if (label == 0 || text[i - 1] == '-') {
                sb_printf(err, "'%s' is not a domain name (empty label or label ending in '-')", text);
                return -1;
            }
            label = 0;
        } else if (isalnum(c) || (c == '-' && label > 0) || c >= 0x80) {
            if (++label > 63) {
                sb_printf(err, "'%s' is not a domain name (a label is longer than 63)", text);
                return -1;
            }
        } else {
            sb_printf(err, "'%s' is not a domain name (character '%c')", text, isprint(c) ? c : '?');
            return -1;
        }
        sb_putc(out, tolower(c));
    }
    if (label == 0 || text[len - 1] == '-') {
        sb_printf(err, "'%s' is not a domain name", text);
        return -1;
    }
    return 0;
}

int admin_address(const char *text, struct strbuf *address, struct strbuf *domain, struct strbuf *err)
{
    struct address a;
    const char *reason = NULL;
    int     rc = -1;

    address_init(&a);
    if (strchr(text, '\n') || strchr(text, ':') || strchr(text, ' '))
        sb_printf(err, "'%s' is not a mail address", text);
    else if (address_parse_path(text, strlen(text), 0, &a, &reason) < 0
             || (a.flags & (ADDRESS_NO_DOMAIN | ADDRESS_LITERAL | ADDRESS_ROUTE)))
        sb_printf(err, "'%s' is not a mail address%s%s", text, reason ? ": " : "", reason ? reason : "");
    else if (admin_domain(sb_str(&a.domain), domain, err) == 0) {
        sb_reset(address);
        address_quote_local(address, sb_str(&a.local), sb_len(&a.local));
        sb_lowercase(address);
        sb_printf(address, "@%s", domain->data);
        rc = 0;
    }
    address_free(&a);
    return rc;
}

const char *admin_domain_class(struct config *cfg, const char *domain, struct strbuf *err)
{
    static const struct {
        const char *param;
        const char *cls;
    } classes[] = {
        {"virtual_mailbox_domains", "mailbox"},
        {"virtual_alias_domains", "alias"},
        {"relay_domains", "relay"},
    };
    struct strbuf spec = STRBUF_INIT;
    struct strbuf path = STRBUF_INIT;
    struct strbuf value = STRBUF_INIT;
    const char *found = NULL;

    for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]) && !found; i++) {
        struct text_table t;

        sb_reset(err);
        if (table_file_for(cfg, classes[i].param, &spec, &path, err) < 0)
            continue;
        if (table_open(&t, path.data, ' ', err) < 0)
            continue;
        if (table_get(&t, domain, &value))
            found = classes[i].cls;
        table_close(&t);
    }
    sb_free(&spec);
    sb_free(&path);
    sb_free(&value);
    return found;
}

int admin_mailbox_path(const char *address, struct strbuf *path, struct strbuf *err)
{
    const char *at = strrchr(address, '@');
    size_t  llen = (size_t) (at - address);

    if (llen == 0 || address[0] == '.' || address[0] == '"' || memchr(address, '/', llen)
        || (llen <= 2 && strspn(address, ".") == llen)) {
        sb_printf(err, "'%s': this local part cannot be a mailbox directory name", address);
        return -1;
    }
    sb_reset(path);
    sb_printf(path, "%s/%.*s/", at + 1, (int) llen, address);
    return 0;
}

bool admin_domain_is_local(struct config *cfg, const char *domain)
{
    struct strbuf err = STRBUF_INIT;
    struct directory *dir = directory_open(cfg, &err);
    enum domain_class cls = DOMAIN_OTHER;

    if (dir != NULL) {
        if (directory_classify(dir, domain, &cls) != DIRECTORY_OK)
            cls = DOMAIN_OTHER;
        directory_close(dir);
    }
    sb_free(&err);
    return cls == DOMAIN_LOCAL;
}

struct config *admin_load_config(const char *config_dir, const char *cmd)
{
    struct strbuf err = STRBUF_INIT;
    struct config *cfg = config_load(config_dir, &err);

    if (cfg == NULL)
        fprintf(stderr, "postctl %s: %s\n", cmd, sb_str(&err));
    sb_free(&err);
    return cfg;
}
