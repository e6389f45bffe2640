/*
 * postctl_init - what "postctl init" and "postctl check" share: the layout
 * of an instance and the owner and mode each part must have.
 */
#ifndef POSTERN_POSTCTL_INIT_H
#define POSTERN_POSTCTL_INIT_H

#include <stdbool.h>
#include <sys/types.h>
#include "strbuf.h"

/* Which account owns a directory, by the main.cf parameter that names it. */
enum layout_owner { OWNER_ROOT, OWNER_MAIL, OWNER_AUTH, OWNER_VMAIL };

struct layout_dir {
    const char *dir_param;              /* main.cf parameter of the base directory */
    const char *subdir;                 /* NULL: the base itself */
    enum layout_owner owner;
    mode_t  mode;
};

/* The directories of an instance, in creation order. */
extern const struct layout_dir instance_dirs[];
extern const size_t instance_dir_count;

/* The tables "postctl init" creates empty: main.cf parameter holding a hash: map */
extern const char *const instance_tables[];
extern const size_t instance_table_count;

struct config;
/* layout_owner_ids - uid/gid of an owner role (root is whoever runs postctl) */
int layout_owner_ids(struct config *cfg, enum layout_owner owner, uid_t *uid, gid_t *gid,
                     struct strbuf *err);

int init_make_certificate(const char *hostname, const char *cert_path, const char *key_path,
                          uid_t key_uid, gid_t key_gid, struct strbuf *err);

#endif
