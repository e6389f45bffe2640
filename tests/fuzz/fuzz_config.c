/*
 * fuzz_config - lib/config.c and lib/master_cf.c: main.cf (name = value,
 * continuation lines, $name / ${name} expansion, comments) and master.cf
 * (service lines with -o overrides) as every daemon and postctl read them.
 * The input up to the first NUL is main.cf, the rest master.cf; both are
 * written to a private temporary directory made once per fuzzer process.
 * Every known parameter is then read back through each typed getter.
 */
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "config.h"
#include "master_cf.h"

static char dir[64];
static char main_cf[96], master_cf[96];

/* cleanup - at exit: the temporary directory goes */
static void cleanup(void)
{
    unlink(main_cf);
    unlink(master_cf);
    rmdir(dir);
}

/* write_file - path = data[0..len) */
static void write_file(const char *path, const uint8_t *data, size_t len)
{
    FILE   *fp = fopen(path, "w");

    if (fp == NULL || (len > 0 && fwrite(data, 1, len, fp) != len) || fclose(fp) != 0)
        abort();
}

/* visit - every parameter through every getter; the values must be C strings */
static void visit(const char *name, const char *value, bool is_set, void *arg)
{
    struct config *cfg = arg;
    long long n;
    bool    b;

    (void) is_set;
    if (value == NULL || name == NULL)
        abort();
    (void) config_lookup(cfg, name);
    (void) config_line(cfg, name);
    (void) config_parse_time(value, &n);
    (void) config_parse_size(value, &n);
    (void) config_parse_bool(value, &b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t  main_len = nul ? (size_t) (nul - data) : size;
    struct strbuf err;
    struct config *cfg;
    struct master_cf mcf;

    fuzz_quiet_log();
    if (dir[0] == 0) {
        snprintf(dir, sizeof(dir), "/tmp/postern-fuzz-config-XXXXXX");
        if (mkdtemp(dir) == NULL)
            abort();
        snprintf(main_cf, sizeof(main_cf), "%s/main.cf", dir);
        snprintf(master_cf, sizeof(master_cf), "%s/master.cf", dir);
        atexit(cleanup);
    }
    write_file(main_cf, data, main_len);
    write_file(master_cf, nul ? nul + 1 : data, nul ? size - main_len - 1 : 0);
    sb_init(&err);
    cfg = config_load(dir, &err);
    if (cfg != NULL) {
        (void) config_warnings(cfg);
        config_foreach(cfg, false, visit, cfg);
        (void) config_size(cfg, "message_size_limit");
        (void) config_int(cfg, "smtpd_recipient_limit");
        (void) config_override(cfg, "myhostname=$mydomain.$myhostname", &err);
        (void) config_str(cfg, "myhostname");
        (void) config_time(cfg, "smtpd_timeout");
        (void) config_bool(cfg, "smtputf8_enable");
        memset(&mcf, 0, sizeof(mcf));
        if (master_cf_load(master_cf, cfg, &mcf, &err) == 0) {
            for (size_t i = 0; i < mcf.count; i++) {
                /* the array is ours, its strings belong to the service */
                free(master_cf_daemon_argv(&mcf.services[i], dir, 0));
            }
            master_cf_free(&mcf);
        }
        config_free(cfg);
    }
    sb_free(&err);
    return 0;
}
