/*
 * postctl_pw - "postctl pw [-s SCHEME]": hash a password, like doveadm pw.
 * The password comes from the terminal (asked twice) or one line of stdin.
 */
#include <stdio.h>
#include <string.h>

#include "password.h"
#include "strbuf.h"

#include "postctl.h"

int cmd_pw(struct postctl *ctl, int argc, char **argv)
{
    struct strbuf plain = STRBUF_INIT, hash = STRBUF_INIT, err = STRBUF_INIT;
    const char *scheme = PASSWORD_DEFAULT_SCHEME;
    int     rc = POSTCTL_FAILED;

    (void) ctl;
    if (postctl_wants_help(argc, argv)) {
        printf("usage: postctl pw [-s SCHEME]\n  SCHEME: SHA512-CRYPT (default), SHA256-CRYPT, BLF-CRYPT, ARGON2ID or SSHA512\n");
        return POSTCTL_OK;
    }
    if (argc == 3 && strcmp(argv[1], "-s") == 0)
        scheme = argv[2];
    else if (argc != 1) {
        fprintf(stderr, "usage: postctl pw [-s SCHEME]\n");
        return POSTCTL_USAGE;
    }
    if (postctl_read_password(false, &plain, &err) == 0 && password_hash(scheme, plain.data, &hash, &err) == 0) {
        printf("%s\n", hash.data);
        rc = POSTCTL_OK;
    } else {
        fprintf(stderr, "postctl pw: %s\n", sb_str(&err));
    }
    if (plain.data)
        explicit_bzero(plain.data, plain.cap);
    sb_free(&plain), sb_free(&hash), sb_free(&err);
    return rc;
}
