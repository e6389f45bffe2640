/*
 * auth_proto - Dovecot's authentication protocol, client and server side.
 * See auth_proto.h for the interface and the line grammar.
 *
 * Parsing splits a line in place at TABs and unescapes each field, so the
 * results point into the caller's buffer and nothing is allocated. Base64 is
 * lib/base64.c's strict decoding (one spelling per value, padding required).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "auth_proto.h"
#include "base64.h"
#include "password.h"
#include "strbuf.h"

#define MAX_FIELDS      64              /* more fields than any real line has: refuse */

/* ---- shared ---- */

int auth_proto_read_line(struct evbuffer *in, struct strbuf *line)
{
    struct evbuffer_ptr eol;
    size_t  len;

    eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
    if (eol.pos < 0)
        return evbuffer_get_length(in) > AUTH_PROTO_MAX_LINE + 1 ? -1 : 0;
    len = (size_t) eol.pos;
    if (len > AUTH_PROTO_MAX_LINE + 1)  /* +1: a "\r" that is dropped below */
        return -1;
    sb_reset(line);
    sb_append(line, evbuffer_pullup(in, (ssize_t) len + 1), len);
    evbuffer_drain(in, len + 1);
    if (sb_len(line) > 0 && line->data[sb_len(line) - 1] == '\r')
        sb_truncate(line, sb_len(line) - 1);
    if (sb_len(line) > AUTH_PROTO_MAX_LINE)
        return -1;
    return 1;
}

void auth_tab_escape(struct strbuf *out, const char *value)
{
    for (const char *p = value; *p; p++) {
        switch (*p) {
        case '\001':
            sb_puts(out, "\0011");
            break;
        case '\t':
            sb_puts(out, "\001t");
            break;
        case '\r':
            sb_puts(out, "\001r");
            break;
        case '\n':
            sb_puts(out, "\001n");
            break;
        default:
            sb_putc(out, *p);
        }
    }
}

int auth_tab_unescape(char *value)
{
    char   *w = value;

    for (const char *r = value; *r; r++) {
        if (*r != '\001') {
            *w++ = *r;
            continue;
        }
        switch (*++r) {
        case '1':
            *w++ = '\001';
            break;
        case 't':
            *w++ = '\t';
            break;
        case 'r':
            *w++ = '\r';
            break;
        case 'n':
            *w++ = '\n';
            break;
        case '0':                       /* Dovecot 2.3 escapes NUL as \0010: never in text we accept */
        default:
            return -1;
        }
    }
    *w = '\0';
    return 0;
}

void auth_base64_encode(struct strbuf *out, const void *data, size_t len)
{
    base64_encode(out, data, len);
}

int auth_base64_decode(const char *in, size_t len, struct strbuf *out)
{
    return base64_decode(in, len, 0, out);
}

bool auth_base64_valid(const char *in)
{
    struct strbuf scratch = STRBUF_INIT;
    bool    valid = base64_decode(in, strlen(in), 0, &scratch) == 0;

    sb_free(&scratch);
    return valid;
}

void auth_log_name(struct strbuf *out, const char *name)
{
    for (const unsigned char *p = (const unsigned char *) name; *p; p++) {
        if (*p <= ' ' || *p == 0x7f || *p == '<' || *p == '>' || *p == ',' || *p == '\\')
            sb_printf(out, "\\x%02x", *p);
        else
            sb_putc(out, *p);
    }
}

/* ---- SASL payloads ---- */

int auth_plain_decode(struct strbuf *raw, struct auth_plain *out, struct strbuf *err)
{
    char   *p = raw->data;
    size_t  len = sb_len(raw);
    char   *nul1, *nul2;

    if (p == NULL || len == 0) {
        sb_set(err, "empty PLAIN response");
        return -1;
    }
    nul1 = memchr(p, '\0', len);
    nul2 = nul1 ? memchr(nul1 + 1, '\0', len - (size_t) (nul1 + 1 - p)) : NULL;
    if (nul1 == NULL || nul2 == NULL) {
        sb_set(err, "PLAIN response must be authzid NUL authcid NUL password");
        return -1;
    }
    if (memchr(nul2 + 1, '\0', len - (size_t) (nul2 + 1 - p)) != NULL) {
        sb_set(err, "PLAIN response has more than two NULs");
        return -1;
    }
    out->authzid = p;
    out->authcid = nul1 + 1;
    out->password = nul2 + 1;           /* raw->data[len] is the strbuf's terminating NUL */
    if (*out->authcid == '\0') {
        sb_set(err, "PLAIN response has an empty user name");
        return -1;
    }
    if (strlen(out->authzid) > AUTH_PROTO_MAX_USER || strlen(out->authcid) > AUTH_PROTO_MAX_USER) {
        sb_printf(err, "PLAIN user name longer than %d bytes", AUTH_PROTO_MAX_USER);
        return -1;
    }
    if (strlen(out->password) > PASSWORD_MAX) {
        sb_printf(err, "PLAIN password longer than %d bytes", PASSWORD_MAX);
        return -1;
    }
    return 0;
}

void auth_plain_encode(struct strbuf *out, const char *authzid, const char *authcid,
                       const char *password)
{
    struct strbuf raw = STRBUF_INIT;

    sb_puts(&raw, authzid);
    sb_putc(&raw, '\0');
    sb_puts(&raw, authcid);
    sb_putc(&raw, '\0');
    sb_puts(&raw, password);
    auth_base64_encode(out, raw.data, sb_len(&raw));
    sb_free(&raw);
}

int auth_login_value(const struct strbuf *raw, size_t max, struct strbuf *err)
{
    if (raw->data != NULL && memchr(raw->data, '\0', sb_len(raw)) != NULL) {
        sb_set(err, "LOGIN response contains a NUL byte");
        return -1;
    }
    if (sb_len(raw) > max) {
        sb_printf(err, "LOGIN response longer than %zu bytes", max);
        return -1;
    }
    return 0;
}

/* ---- parsing helpers ---- */

/* split_fields - cut line at TABs; number of fields, or -1 when there are too many */
static int split_fields(char *line, char **fields, int max)
{
    int     n = 0;
    char   *p = line;

    for (;;) {
        if (n == max)
            return -1;
        fields[n++] = p;
        p = strchr(p, '\t');
        if (p == NULL)
            return n;
        *p++ = '\0';
    }
}

/* parse_uint - a decimal number without sign or spaces, at most max */
static int parse_uint(const char *text, unsigned long max, unsigned long *value)
{
    char   *end;
    unsigned long v;

    if (!isdigit((unsigned char) *text) || strlen(text) > 20)
        return -1;
    errno = 0;
    v = strtoul(text, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return -1;
    *value = v;
    return 0;
}

/* parse_id - a request id: 1..UINT_MAX */
static int parse_id(const char *text, unsigned *id, struct strbuf *err)
{
    unsigned long v;

    if (parse_uint(text, UINT_MAX, &v) < 0 || v == 0) {
        sb_set(err, "bad request id");
        return -1;
    }
    *id = (unsigned) v;
    return 0;
}

/* mech_valid - a SASL mechanism name (RFC 4422: upper-case letters, digits, "-", "_") */
static bool mech_valid(const char *mech)
{
    size_t  len = strlen(mech);

    if (len == 0 || len > AUTH_PROTO_MAX_MECH)
        return false;
    for (const char *p = mech; *p; p++)
        if (!isalnum((unsigned char) *p) && *p != '-' && *p != '_')
            return false;
    return true;
}

/* unescape_all - unescape fields[from..n) in place */
static int unescape_all(char **fields, int from, int n, struct strbuf *err)
{
    for (int i = from; i < n; i++) {
        if (auth_tab_unescape(fields[i]) < 0) {
            sb_set(err, "bad escape sequence");
            return -1;
        }
    }
    return 0;
}

/* put_command - the command word of a bad line, sanitized, for messages */
static void put_command(struct strbuf *err, const char *word)
{
    sb_puts(err, ": \"");
    for (int i = 0; word[i] && i < 16; i++)
        sb_putc(err, isprint((unsigned char) word[i]) ? word[i] : '?');
    sb_puts(err, "\"");
}

/* ---- client side ---- */

void auth_client_hello(struct strbuf *out, unsigned long pid)
{
    sb_printf(out, "VERSION\t%d\t%d\nCPID\t%lu\n", AUTH_PROTO_MAJOR, AUTH_PROTO_MINOR, pid);
}

/* put_param - append "\tname=value" with value escaped; omitted when value is NULL */
static void put_param(struct strbuf *out, const char *name, const char *value)
{
    if (value == NULL)
        return;
    sb_printf(out, "\t%s=", name);
    auth_tab_escape(out, value);
}

int auth_client_request(struct strbuf *out, unsigned id, const struct auth_client_req *req,
                        struct strbuf *err)
{
    if (id == 0) {
        sb_set(err, "request id 0 is not allowed");
        return -1;
    }
    if (req->mech == NULL || !mech_valid(req->mech)) {
        sb_set(err, "bad SASL mechanism name");
        return -1;
    }
    if (req->resp != NULL && !auth_base64_valid(req->resp)) {
        sb_set(err, "initial response is not valid base64");
        return -1;
    }
    sb_printf(out, "AUTH\t%u\t%s", id, req->mech);
    put_param(out, "service", req->service ? req->service : "smtp");
    if (req->secured)
        sb_puts(out, "\tsecured");
    put_param(out, "lip", req->lip);
    put_param(out, "rip", req->rip);
    if (req->resp != NULL)
        sb_printf(out, "\tresp=%s", req->resp);
    sb_putc(out, '\n');
    return 0;
}

int auth_client_cont(struct strbuf *out, unsigned id, const char *b64, struct strbuf *err)
{
    if (id == 0 || !auth_base64_valid(b64)) {
        sb_set(err, "response is not valid base64");
        return -1;
    }
    sb_printf(out, "CONT\t%u\t%s\n", id, b64);
    return 0;
}

bool auth_server_mech_offered(const char *mech_list, const char *name)
{
    size_t  nlen = strlen(name);
    const char *p = mech_list;

    while (*p) {
        size_t  len = strcspn(p, " ");

        if (len == nlen && strncasecmp(p, name, len) == 0)
            return true;
        p += len;
        p += strspn(p, " ");
    }
    return false;
}

/* parse_result_params - the "user=", "temp", "reason=" parameters of OK/FAIL */
static void parse_result_params(char **fields, int from, int n, struct auth_server_line *out)
{
    for (int i = from; i < n; i++) {
        if (strncmp(fields[i], "user=", 5) == 0)
            out->user = fields[i] + 5;
        else if (strcmp(fields[i], "temp") == 0)
            out->temp = true;
        else if (strncmp(fields[i], "reason=", 7) == 0)
            out->reason = fields[i] + 7;
    }
}

/* split_line - bounded length, fields split at TABs and unescaped; field count or -1 */
static int split_line(char *line, char *f[MAX_FIELDS], struct strbuf *err)
{
    int     n;

    if (strlen(line) > AUTH_PROTO_MAX_LINE) {
        sb_set(err, "line too long");
        return -1;
    }
    if ((n = split_fields(line, f, MAX_FIELDS)) < 0) {
        sb_set(err, "too many fields");
        return -1;
    }
    if (unescape_all(f, 1, n, err) < 0)
        return -1;
    return n;
}

/* parse_version - "VERSION\tMAJOR\tMINOR" */
static int parse_version(char *f[], int n, unsigned *major, unsigned *minor)
{
    unsigned long v;

    if (n < 3 || parse_uint(f[1], UINT_MAX, &v) < 0)
        return -1;
    *major = (unsigned) v;
    if (parse_uint(f[2], UINT_MAX, &v) < 0)
        return -1;
    *minor = (unsigned) v;
    return 0;
}

int auth_server_line_parse(char *line, struct auth_server_line *out, struct strbuf *err)
{
    char   *f[MAX_FIELDS];
    int     n;

    memset(out, 0, sizeof(*out));
    if ((n = split_line(line, f, err)) < 0)
        return -1;
    if (strcmp(f[0], "VERSION") == 0) {
        out->type = AUTH_S_VERSION;
        if (parse_version(f, n, &out->major, &out->minor) < 0)
            goto bad;
    } else if (strcmp(f[0], "MECH") == 0) {
        out->type = AUTH_S_MECH;
        if (n < 2 || !mech_valid(f[1]))
            goto bad;
        out->mech = f[1];
        for (int i = 2; i < n; i++) {
            if (strcmp(f[i], "plaintext") == 0)
                out->mech_plaintext = true;
            else if (strcmp(f[i], "anonymous") == 0)
                out->mech_anonymous = true;
        }
    } else if (strcmp(f[0], "SPID") == 0 || strcmp(f[0], "CUID") == 0
               || strcmp(f[0], "COOKIE") == 0) {
        out->type = f[0][0] == 'S' ? AUTH_S_SPID : f[0][1] == 'U' ? AUTH_S_CUID : AUTH_S_COOKIE;
        if (n < 2)
            goto bad;
        out->arg = f[1];
    } else if (strcmp(f[0], "DONE") == 0) {
        out->type = AUTH_S_DONE;
    } else if (strcmp(f[0], "OK") == 0 || strcmp(f[0], "FAIL") == 0) {
        out->type = f[0][0] == 'O' ? AUTH_S_OK : AUTH_S_FAIL;
        if (n < 2 || parse_id(f[1], &out->id, err) < 0)
            goto bad;
        parse_result_params(f, 2, n, out);
        if (out->user != NULL && strlen(out->user) > AUTH_PROTO_MAX_USER)
            goto bad;
        if (out->type == AUTH_S_OK && (out->user == NULL || *out->user == '\0'))
            goto bad;                   /* an OK must say who logged in */
    } else if (strcmp(f[0], "CONT") == 0) {
        out->type = AUTH_S_CONT;
        if (n < 2 || parse_id(f[1], &out->id, err) < 0)
            goto bad;
        out->data = n >= 3 ? f[2] : "";  /* Dovecot sends "CONT\t<id>\t" for an empty challenge */
        if (!auth_base64_valid(out->data)) {
            sb_set(err, "CONT challenge is not valid base64");
            return -1;
        }
    } else {
        out->type = AUTH_S_UNKNOWN;
    }
    return 0;

bad:
    if (sb_len(err) == 0) {
        sb_puts(err, "malformed server line");
        put_command(err, f[0]);
    }
    return -1;
}

/* ---- server side ---- */

void auth_server_handshake(struct strbuf *out, const char *const *mechs, unsigned long spid,
                           unsigned long cuid, const char *cookie_hex)
{
    sb_printf(out, "VERSION\t%d\t%d\n", AUTH_PROTO_MAJOR, AUTH_PROTO_MINOR);
    for (const char *const *m = mechs; *m; m++)
        sb_printf(out, "MECH\t%s\tplaintext\n", *m);
    sb_printf(out, "SPID\t%lu\nCUID\t%lu\nCOOKIE\t%s\nDONE\n", spid, cuid, cookie_hex);
}

void auth_server_ok(struct strbuf *out, unsigned id, const char *user)
{
    sb_printf(out, "OK\t%u", id);
    put_param(out, "user", user);
    sb_putc(out, '\n');
}

void auth_server_fail(struct strbuf *out, unsigned id, const char *user, bool temp,
                      const char *reason)
{
    sb_printf(out, "FAIL\t%u", id);
    put_param(out, "user", user);
    if (temp)
        sb_puts(out, "\ttemp");
    put_param(out, "reason", reason);
    sb_putc(out, '\n');
}

void auth_server_cont(struct strbuf *out, unsigned id, const void *data, size_t len)
{
    sb_printf(out, "CONT\t%u\t", id);
    auth_base64_encode(out, data, len);
    sb_putc(out, '\n');
}

int auth_client_line_parse(char *line, struct auth_client_line *out, struct strbuf *err)
{
    char   *f[MAX_FIELDS];
    int     n;

    memset(out, 0, sizeof(*out));
    if ((n = split_line(line, f, err)) < 0)
        return -1;
    if (strcmp(f[0], "VERSION") == 0) {
        out->type = AUTH_C_VERSION;
        if (parse_version(f, n, &out->major, &out->minor) < 0)
            goto bad;
    } else if (strcmp(f[0], "CPID") == 0) {
        out->type = AUTH_C_CPID;
        if (n < 2 || parse_uint(f[1], ULONG_MAX, &out->pid) < 0)
            goto bad;
    } else if (strcmp(f[0], "AUTH") == 0) {
        out->type = AUTH_C_AUTH;
        if (n < 3 || parse_id(f[1], &out->id, err) < 0)
            goto bad;
        if (!mech_valid(f[2])) {
            sb_set(err, "bad mechanism name");
            return -1;
        }
        out->mech = f[2];
        for (int i = 3; i < n; i++) {
            char   *p = f[i];

            if (strncmp(p, "service=", 8) == 0)
                out->service = p + 8;
            else if (strcmp(p, "secured") == 0 || strncmp(p, "secured=", 8) == 0)
                out->secured = true;    /* Dovecot 2.3.x sends "secured=tls" */
            else if (strcmp(p, "nologin") == 0)
                out->nologin = true;
            else if (strcmp(p, "valid-client-cert") == 0)
                out->valid_client_cert = true;
            else if (strncmp(p, "lip=", 4) == 0)
                out->lip = p + 4;
            else if (strncmp(p, "rip=", 4) == 0)
                out->rip = p + 4;
            else if (strncmp(p, "resp=", 5) == 0)
                out->resp = p + 5;
            /* anything else (lport=, session=, local_name=, ...) is informational */
        }
        if (out->service == NULL || *out->service == '\0') {
            sb_set(err, "AUTH without service=");
            return -1;
        }
        if (out->rip != NULL && strlen(out->rip) > 64) {
            sb_set(err, "rip= too long");
            return -1;
        }
        if (out->lip != NULL && strlen(out->lip) > 64) {
            sb_set(err, "lip= too long");
            return -1;
        }
    } else if (strcmp(f[0], "CONT") == 0) {
        out->type = AUTH_C_CONT;
        if (n < 2 || parse_id(f[1], &out->id, err) < 0)
            goto bad;
        out->data = n >= 3 ? f[2] : "";
    } else {
        sb_set(err, "unknown command");
        put_command(err, f[0]);
        return -1;
    }
    return 0;

bad:
    if (sb_len(err) == 0) {
        sb_puts(err, "malformed client line");
        put_command(err, f[0]);
    } else {
        sb_puts(err, " in");
        put_command(err, f[0]);
    }
    return -1;
}
