/*
 * tls - the OpenSSL server side shared by smtpd and imapd.
 *
 * Interface (tls.h): tls_server_create(), tls_server_free(),
 * tls_server_ssl(), tls_server_ctx(), tls_parse_protocols(), tls_describe(),
 * tls_errors().
 *
 * The context is built once per process, before the privilege drop, and is
 * then read-only except for OpenSSL's own session cache. Keys that need a
 * pass phrase are refused rather than prompted for: a daemon has no
 * terminal. Each chain is checked against its key at load time, so a
 * mismatched pair is a start-up error naming the files, not a handshake
 * failure for every client.
 *
 * Client-initiated renegotiation is refused (a cheap way for a client to make
 * the server do expensive work), and idle connections release their buffers
 * (imapd keeps many sessions open for hours). A client that closes without
 * close_notify has simply gone away: SMTP and IMAP frame their own data, so
 * there is no truncation to detect, and the log says "lost connection".
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "mem.h"
#include "strbuf.h"
#include "tls.h"

#define TLS_DEFAULT_PROTOCOLS   ">=TLSv1.2"
#define TLS_DEFAULT_TIMEOUT     3600
#define TLS_CACHE_SIZE          20000   /* sessions per process; OpenSSL evicts the oldest */

struct tls_server {
    SSL_CTX *ctx;
};

/* The protocol names, lowest first: the order defines ">=" and "<=". */
static const struct {
    const char *name;
    int     version;
    long    no_option;
} protocols[] = {
    {"SSLv3", SSL3_VERSION, SSL_OP_NO_SSLv3},
    {"TLSv1", TLS1_VERSION, SSL_OP_NO_TLSv1},
    {"TLSv1.1", TLS1_1_VERSION, SSL_OP_NO_TLSv1_1},
    {"TLSv1.2", TLS1_2_VERSION, SSL_OP_NO_TLSv1_2},
    {"TLSv1.3", TLS1_3_VERSION, SSL_OP_NO_TLSv1_3},
};

#define PROTOCOL_COUNT ((int) (sizeof(protocols) / sizeof(protocols[0])))

/* tls_errors - append OpenSSL's queued errors ("; "-separated) and clear the queue */
void tls_errors(struct strbuf *out)
{
    unsigned long e;
    char    buf[256];
    bool    first = true;

    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, buf, sizeof(buf));
        sb_printf(out, "%s%s", first ? "" : "; ", buf);
        first = false;
    }
    if (first)
        sb_puts(out, "no reason given by the TLS library");
}

/* find_protocol - index of name in protocols[]; -1 if unknown. SSLv2 is known but never allowed. */
static int find_protocol(const char *name)
{
    for (int i = 0; i < PROTOCOL_COUNT; i++)
        if (strcasecmp(protocols[i].name, name) == 0)
            return i;
    return -1;
}

/*
 * tls_parse_protocols - spec into the lowest and highest version to allow
 * (TLS1_VERSION ...) and SSL_OP_NO_* options for holes; -1 with err on an
 * unknown name or when nothing is left.
 */
int tls_parse_protocols(const char *spec, int *min_version, int *max_version,
                        long *no_options, struct strbuf *err)
{
    bool    allowed[PROTOCOL_COUNT];
    bool    included[PROTOCOL_COUNT];
    bool    any_included = false;
    int     lo = 0, hi = PROTOCOL_COUNT - 1;
    const char *p = spec && *spec ? spec : TLS_DEFAULT_PROTOCOLS;
    int     first = -1, last = -1;

    memset(included, 0, sizeof(included));
    for (int i = 0; i < PROTOCOL_COUNT; i++)
        allowed[i] = true;
    while (*p) {
        char    word[32];
        size_t  len = strcspn(p, ", :\t\r\n");
        const char *name;
        int     idx;

        if (len == 0) {
            p++;
            continue;
        }
        if (len >= sizeof(word)) {
            sb_printf(err, "protocol name too long: \"%.*s...\"", 20, p);
            return -1;
        }
        memcpy(word, p, len);
        word[len] = 0;
        p += len;
        name = word;
        if (strncmp(word, ">=", 2) == 0 || strncmp(word, "<=", 2) == 0)
            name = word + 2;
        else if (word[0] == '!')
            name = word + 1;
        if (strcasecmp(name, "SSLv2") == 0 && word[0] == '!')
            continue;                   /* never supported; excluding it is a no-op */
        if ((idx = find_protocol(name)) < 0) {
            sb_printf(err, "unknown TLS protocol \"%s\"; use >=TLSv1.2, <=TLSv1.3, !TLSv1.1 "
                      "or names among SSLv3, TLSv1, TLSv1.1, TLSv1.2, TLSv1.3", word);
            return -1;
        }
        if (word[0] == '>') {
            if (idx > lo)
                lo = idx;
        } else if (word[0] == '<') {
            if (idx < hi)
                hi = idx;
        } else if (word[0] == '!') {
            allowed[idx] = false;
        } else {
            included[idx] = true;
            any_included = true;
        }
    }
    *no_options = 0;
    for (int i = 0; i < PROTOCOL_COUNT; i++) {
        bool    ok = allowed[i] && i >= lo && i <= hi && (!any_included || included[i]);

        if (ok) {
            if (first < 0)
                first = i;
            last = i;
        }
        allowed[i] = ok;
    }
    if (first < 0) {
        sb_printf(err, "\"%s\" leaves no TLS protocol enabled", spec && *spec ? spec
                  : TLS_DEFAULT_PROTOCOLS);
        return -1;
    }
    for (int i = first; i <= last; i++)
        if (!allowed[i])
            *no_options |= protocols[i].no_option;
    *min_version = protocols[first].version;
    *max_version = protocols[last].version;
    return 0;
}

/* no_passphrase - keys with a pass phrase are refused: there is nobody to ask */
static int no_passphrase(char *buf, int size, int rwflag, void *arg)
{
    (void) buf;
    (void) size;
    (void) rwflag;
    (void) arg;
    return 0;
}

/* cert_key_type - the key type of the chain loaded last (NID_undef if none) */
static int cert_key_type(SSL_CTX *ctx)
{
    X509   *x = SSL_CTX_get0_certificate(ctx);
    EVP_PKEY *pk = x ? X509_get0_pubkey(x) : NULL;

    return pk ? EVP_PKEY_get_base_id(pk) : NID_undef;
}

/* load_chain - one certificate chain and its key, checked against each other */
static int load_chain(SSL_CTX *ctx, const char *cert, const char *key, struct strbuf *err)
{
    if (key == NULL || *key == 0)
        key = cert;
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        sb_printf(err, "%s: cannot load the certificate chain (PEM, certificate first): ", cert);
        tls_errors(err);
        return -1;
    }
    /* OpenSSL checks here already that the key belongs to the certificate. */
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        unsigned long e = ERR_peek_last_error();

        if (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH
            || ERR_GET_REASON(e) == X509_R_KEY_TYPE_MISMATCH)
            sb_printf(err, "%s: the private key does not match the certificate in %s: ",
                      key, cert);
        else
            sb_printf(err, "%s: cannot load the private key (PEM, no pass phrase): ", key);
        tls_errors(err);
        return -1;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        sb_printf(err, "%s: the private key does not match the certificate in %s: ", key, cert);
        tls_errors(err);
        return -1;
    }
    return 0;
}

/* tls_server_create - the context; NULL with the reason in err. Call before chroot. */
struct tls_server *tls_server_create(const struct tls_server_config *conf, struct strbuf *err)
{
    struct tls_server *ts;
    SSL_CTX *ctx;
    int     min_version, max_version;
    long    no_options;
    const char *sid = conf->session_id_context ? conf->session_id_context : "postern";
    size_t  sid_len = strlen(sid);
    int     first_type = NID_undef;

    if (tls_parse_protocols(conf->protocols, &min_version, &max_version, &no_options, err) < 0)
        return NULL;
    if ((conf->cert_file == NULL || *conf->cert_file == 0)
        && (conf->eccert_file == NULL || *conf->eccert_file == 0)) {
        sb_puts(err, "no certificate file given");
        return NULL;
    }
    ERR_clear_error();
    if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
        sb_puts(err, "cannot create a TLS context: ");
        tls_errors(err);
        return NULL;
    }
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    if (SSL_CTX_set_min_proto_version(ctx, min_version) != 1
        || SSL_CTX_set_max_proto_version(ctx, max_version) != 1) {
        sb_puts(err, "cannot set the TLS protocol range: ");
        tls_errors(err);
        goto fail;
    }
    SSL_CTX_set_options(ctx, (uint64_t) no_options | SSL_OP_NO_COMPRESSION
                        | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (conf->ciphers && *conf->ciphers
        && SSL_CTX_set_cipher_list(ctx, conf->ciphers) != 1) {
        sb_printf(err, "bad cipher list \"%s\": ", conf->ciphers);
        tls_errors(err);
        goto fail;
    }
    if (conf->cert_file && *conf->cert_file) {
        if (load_chain(ctx, conf->cert_file, conf->key_file, err) < 0)
            goto fail;
        first_type = cert_key_type(ctx);
    }
    if (conf->eccert_file && *conf->eccert_file) {
        if (load_chain(ctx, conf->eccert_file, conf->eckey_file, err) < 0)
            goto fail;
        /* The same key type twice would silently replace the first chain. */
        if (first_type != NID_undef && cert_key_type(ctx) == first_type) {
            sb_printf(err, "%s: holds the same key type as %s; the second chain must use "
                      "another algorithm (e.g. ECDSA next to RSA)", conf->eccert_file,
                      conf->cert_file);
            goto fail;
        }
    }
    /* Resumption: sessions are cached and tickets issued, both for this context only. */
    if (sid_len > SSL_MAX_SID_CTX_LENGTH)
        sid_len = SSL_MAX_SID_CTX_LENGTH;
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *) sid, (unsigned) sid_len);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, TLS_CACHE_SIZE);
    SSL_CTX_set_timeout(ctx, conf->session_timeout > 0 ? conf->session_timeout
                        : TLS_DEFAULT_TIMEOUT);
    ts = xcalloc(1, sizeof(*ts));
    ts->ctx = ctx;
    return ts;

  fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* tls_server_free - the context (connections keep their own reference) */
void tls_server_free(struct tls_server *ts)
{
    if (ts == NULL)
        return;
    SSL_CTX_free(ts->ctx);
    free(ts);
}

/* tls_server_ssl - a new server-side SSL for one connection (NULL only when out of memory) */
SSL    *tls_server_ssl(struct tls_server *ts)
{
    SSL    *ssl = SSL_new(ts->ctx);

    if (ssl != NULL)
        SSL_set_accept_state(ssl);
    return ssl;
}

/* tls_server_ctx - the OpenSSL context */
SSL_CTX *tls_server_ctx(struct tls_server *ts)
{
    return ts->ctx;
}

/* key_words - "X25519", "ECDHE (prime256v1)", "DHE (2048 bits)"; RSA keys: "(2048 bits)" */
static void key_words(struct strbuf *out, EVP_PKEY *pk, const char *ec_name)
{
    char    group[80];
    size_t  glen = 0;

    switch (EVP_PKEY_get_base_id(pk)) {
    case EVP_PKEY_EC:
        if (EVP_PKEY_get_group_name(pk, group, sizeof(group), &glen) != 1)
            snprintf(group, sizeof(group), "%d bits", EVP_PKEY_get_bits(pk));
        sb_printf(out, "%s%s(%s)", ec_name, *ec_name ? " " : "", group);
        break;
    case EVP_PKEY_DH:
        sb_printf(out, "DHE (%d bits)", EVP_PKEY_get_bits(pk));
        break;
    case EVP_PKEY_RSA:
    case EVP_PKEY_RSA_PSS:
        sb_printf(out, "(%d bits)", EVP_PKEY_get_bits(pk));
        break;
    default:
        sb_puts(out, OBJ_nid2sn(EVP_PKEY_get_base_id(pk)));
        break;
    }
}

/* tls_describe - main: protocol, cipher, bits; details: key exchange and signature ("" if unknown) */
void tls_describe(SSL *ssl, struct strbuf *main, struct strbuf *details)
{
    const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
    int     alg_bits = 0;
    int     bits = cipher ? SSL_CIPHER_get_bits(cipher, &alg_bits) : 0;
    EVP_PKEY *tmp = NULL;
    EVP_PKEY *own = SSL_get_privatekey(ssl);
    int     nid;

    sb_printf(main, "%s with cipher %s (%d/%d bits)", SSL_get_version(ssl),
              cipher ? SSL_CIPHER_get_name(cipher) : "unknown", bits, alg_bits);

    /*
     * On the server the peer's temporary key is the client's TLS 1.3 key
     * share; TLS 1.2 does not keep it, but the negotiated group says as much.
     */
    if (SSL_get_peer_tmp_key(ssl, &tmp) == 1 && tmp != NULL) {
        sb_puts(details, "key-exchange ");
        key_words(details, tmp, "ECDHE");
        EVP_PKEY_free(tmp);
    } else if ((nid = SSL_get_negotiated_group(ssl)) > 0 && (nid & TLSEXT_nid_unknown) == 0) {
        const char *name = OBJ_nid2sn(nid);

        if (nid == NID_X25519 || nid == NID_X448)
            sb_printf(details, "key-exchange %s", name);
        else if (strncmp(name, "ffdhe", 5) == 0)
            sb_printf(details, "key-exchange DHE (%s)", name);
        else
            sb_printf(details, "key-exchange ECDHE (%s)", name);
    }
    /* Resumed sessions sign nothing: no signature to describe. */
    if (own != NULL && SSL_get_signature_type_nid(ssl, &nid) == 1) {
        const char *sig;

        switch (nid) {
        case EVP_PKEY_RSA:
            sig = SSL_version(ssl) >= TLS1_3_VERSION ? "RSA-PSS" : "RSA";
            break;
        case EVP_PKEY_RSA_PSS:
            sig = "RSA-PSS";
            break;
        case EVP_PKEY_EC:
            sig = "ECDSA";
            break;
        default:
            sig = OBJ_nid2sn(nid);
            break;
        }
        sb_printf(details, "%sserver-signature %s", sb_len(details) ? " " : "", sig);
        if (EVP_PKEY_get_base_id(own) == EVP_PKEY_EC
            || EVP_PKEY_get_base_id(own) == EVP_PKEY_RSA
            || EVP_PKEY_get_base_id(own) == EVP_PKEY_RSA_PSS) {
            sb_putc(details, ' ');
            key_words(details, own, "");
        }
        if (SSL_get_signature_nid(ssl, &nid) == 1 && nid != NID_undef)
            sb_printf(details, " server-digest %s", OBJ_nid2sn(nid));
    }
}
