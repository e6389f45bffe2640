/*
 * postctl_cert - a self-signed TLS certificate for a new instance.
 *
 * An RSA-2048 key and a SHA-256 X.509v3 certificate for the host name, with
 * subjectAltName, valid ten years. Good enough to start; the admin replaces it
 * with a real one (smtpd_tls_cert_file / smtpd_tls_key_file).
 */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include "fsutil.h"
#include "postctl_init.h"

/* pem_of_key / pem_of_cert - serialize into a strbuf through a memory BIO */
static void bio_drain(BIO *bio, struct strbuf *out)
{
    char   *data;
    long    len = BIO_get_mem_data(bio, &data);

    sb_reset(out);
    if (len > 0)
        sb_append(out, data, (size_t) len);
}

/* add_ext - one X.509v3 extension from its config-style text */
static int add_ext(X509 *cert, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;

    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL)
        return -1;
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return 0;
}

int init_make_certificate(const char *hostname, const char *cert_path, const char *key_path,
                          uid_t key_uid, gid_t key_gid, struct strbuf *err)
{
    EVP_PKEY *key = EVP_RSA_gen(2048);
    X509   *cert = X509_new();
    BIO    *bio = NULL;
    struct strbuf pem = STRBUF_INIT;
    struct strbuf san = STRBUF_INIT;
    unsigned char serial[16];
    BIGNUM *bn = NULL;
    int     rc = -1;

    if (key == NULL || cert == NULL || RAND_bytes(serial, sizeof(serial)) != 1) {
        sb_puts(err, "cannot generate the TLS key");
        goto out;
    }
    serial[0] &= 0x7f;                  /* positive serial number */
    bn = BN_bin2bn(serial, sizeof(serial), NULL);
    X509_set_version(cert, 2);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 10L * 365 * 24 * 3600);
    X509_set_pubkey(cert, key);
    X509_NAME *name = X509_get_subject_name(cert);

    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *) "Postern", -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *) hostname, -1, -1, 0);
    X509_set_issuer_name(cert, name);
    sb_printf(&san, "DNS:%s", hostname);
    if (add_ext(cert, NID_subject_alt_name, san.data) < 0
        || add_ext(cert, NID_basic_constraints, "critical,CA:FALSE") < 0
        || add_ext(cert, NID_ext_key_usage, "serverAuth") < 0
        || X509_sign(cert, key, EVP_sha256()) == 0) {
        sb_printf(err, "cannot build the certificate for %s", hostname);
        goto out;
    }
    bio = BIO_new(BIO_s_mem());
    if (!PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL))
        goto out;
    bio_drain(bio, &pem);
    if (fs_write_atomic(key_path, pem.data, sb_len(&pem), 0600, key_uid, key_gid, err) < 0)
        goto out;
    BIO_free(bio);
    bio = BIO_new(BIO_s_mem());
    if (!PEM_write_bio_X509(bio, cert))
        goto out;
    bio_drain(bio, &pem);
    if (fs_write_atomic(cert_path, pem.data, sb_len(&pem), 0644, key_uid, key_gid, err) < 0)
        goto out;
    rc = 0;

out:
    if (rc < 0 && sb_len(err) == 0)
        sb_puts(err, "cannot write the certificate");
    BIO_free(bio);
    BN_free(bn);
    X509_free(cert);
    EVP_PKEY_free(key);
    sb_free(&pem);
    sb_free(&san);
    return rc;
}
